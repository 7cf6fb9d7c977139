"""The complete verifier: a portfolio that picks its strategy from the instance.

Stages, each bounded by the shared deadline:

1. **attack** — PGD on the property's violation (all terms batched), then on
   low-dimensional inputs PGD from the boxes' vertices (:data:`CORNER_PGD`); a candidate
   becomes a verdict only after replay on the IR and the original ONNX model.
2. **bounds** — CROWN (then alpha-CROWN) lower bounds of every term's rows; a term is
   proven unreachable when some row's sound lower bound is > 0.
3. **complete search** on the terms left — when the input is low-dimensional (ACAS Xu)
   input-splitting branch and bound for a few seconds, then the exact star-set search
   (:mod:`verinet.verify.star`), otherwise branch and bound over ReLU phases
   (and Sigmoid/Tanh intervals) on the graph (:mod:`verinet.verify.graph_bab`; the dense
   chain's :mod:`verinet.verify.relu_bab` on request, ``complete="chain-bab"``), after
   the exact MILP on half the budget for small models it encodes
   (``VerifyOptions.milp_first_units``); on request (``complete="milp"``) a MILP per
   term with big-M constants from LP-tightened sound bounds.

Nothing here catches internal errors: an exception propagates to the caller (the CLI
reports ``error``); it never becomes a verdict.  Only confirmed witnesses give
FALSIFIED; only sound bounds, exhausted branch and bound or a MILP dual bound give
VERIFIED.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace

import numpy as np

from verinet.attacks.property_pgd import PgdOptions, property_pgd
from verinet.ir.chain import Chain
from verinet.ir.graph import Network
from verinet.milp import MILP_BACKENDS
from verinet.spec.matrices import stacked_terms
from verinet.spec.property import Property
from verinet.types import Counterexample, Reason, Status, UnsupportedModelError
from verinet.verify import engines
from verinet.verify.deadline import Deadline
from verinet.verify.graph_bab import GraphBabOptions
from verinet.verify.input_bab import InputBabOptions, input_bab
from verinet.verify.relu_bab_options import ReluBabOptions
from verinet.verify.result import COMPLETE_CHOICES, TermOutcome, VerificationResult
from verinet.verify.star import StarJob, StarOptions, StarOutcome, star_verify, worker_count
from verinet.verify.views import ModelViews
from verinet.verify.witness import OnnxEval, Replayer

log = logging.getLogger(__name__)

PROOF_TOL = 1e-9

#: The second attack on low-dimensional inputs: 1024 restarts per term, half from the
#: box's vertices and half uniform, small steps.  On ACAS Xu 1_9 property 7 (unsafe set: a
#: sliver along one face, three quarters of the box a zero-gradient plateau) it finds the
#: witness for 20 of 20 seeds in 0.15 s; uniform starts alone with the same budget find it
#: for 1 of 20.  The uniform half finds the small-box property 2 witnesses (1_3, 1_5, 5_3)
#: now and then (2, 1, 0 of 20 seeds), which vertex starts alone never did (0 of 20).
CORNER_PGD = PgdOptions(restarts=1024, steps=30, initial_step=0.03, starts="mixed")


@dataclass(frozen=True)
class VerifyOptions:
    """Options of the portfolio (all keyword-only in spirit; the CLI builds them)."""

    attack: bool = True
    pgd: PgdOptions = PgdOptions()
    corner_pgd: PgdOptions | None = CORNER_PGD  # low-dim inputs only; None: skip
    attack_fraction: float = 0.15   # share of the budget the first attack may use
    alpha_crown: bool = True
    complete: str = "auto"          # one of COMPLETE_CHOICES
    milp_backend: str = "highs"
    input_split_max_dim: int = 16
    input_bab: InputBabOptions = InputBabOptions()
    # auto, low-dim: input-bab this long, then the star search; the first
    # input_bab_alone_s of it alone, the rest beside the star search (one worker).
    # Measured on the 44 ACAS Xu instances with the vertex-certified star search:
    # 130.6 s with 0.3 s (input splitting never beside the star search), 154.6 s with 5 s.
    input_bab_first_s: float = 0.3
    input_bab_alone_s: float = 0.3
    # auto on a model the MILP encodes exactly, with at most milp_first_units nonlinear
    # units (ReLU, MaxPool, ...; 0: never) and at most milp_first_inputs inputs: the MILP
    # first, on this share of the budget
    milp_first_units: int = 256
    milp_first_inputs: int = 64
    milp_first_share: float = 0.5
    relu_bab: ReluBabOptions = ReluBabOptions()
    graph_bab: GraphBabOptions = GraphBabOptions()
    star: StarOptions = StarOptions()
    seed: int = 0

    def __post_init__(self) -> None:
        if self.complete not in COMPLETE_CHOICES:
            raise ValueError(f"unknown complete strategy {self.complete!r}")
        if self.milp_backend not in MILP_BACKENDS:
            raise ValueError(f"unknown MILP backend {self.milp_backend!r}")


@dataclass
class _Run:
    """Mutable bookkeeping of one verification run (never escapes this module)."""

    prop: Property
    replayer: Replayer
    deadline: Deadline
    stats: dict[str, float] = field(default_factory=dict)
    outcomes: dict[int, TermOutcome] = field(default_factory=dict)

    def timed(self, key: str, t0: float) -> None:
        self.stats[key] = self.stats.get(key, 0.0) + time.perf_counter() - t0

    def result(self, status: Status, reason: Reason, cex: object = None, msg: str = "") -> (
        VerificationResult
    ):
        terms = tuple(
            self.outcomes.get(i, TermOutcome(i, Status.UNKNOWN, "none"))
            for i in range(len(self.prop.terms))
        )
        return VerificationResult(
            status, reason, cex, terms, self.deadline.elapsed(),  # type: ignore[arg-type]
            tuple(sorted(self.stats.items())), msg,
        )


def verify(
    network: Network,
    prop: Property,
    onnx_eval: OnnxEval | None,
    timeout: float,
    options: VerifyOptions = VerifyOptions(),
    deadline: Deadline | None = None,
    views: ModelViews | None = None,
) -> VerificationResult:
    """Decide whether some term of ``prop`` is reachable by ``network``.  ``views``: the
    model's engine views when the caller keeps them across calls (derived here else)."""
    run = _Run(prop, Replayer(network, prop, onnx_eval), deadline or Deadline(timeout))
    views = ModelViews(network) if views is None else views
    rng = np.random.default_rng(options.seed)
    if options.attack:
        cex = _attack(network, run, options, rng)
        if cex is not None:
            return run.result(Status.FALSIFIED, Reason.WITNESS_CONFIRMED, cex)
    low_dim = network.n_inputs <= options.input_split_max_dim
    chain = views.chain if low_dim or views.dense else None
    if chain is None and views.graph.unsupported:
        return run.result(Status.UNKNOWN, Reason.UNSUPPORTED,
                          msg=str(UnsupportedModelError(list(views.graph.unsupported),
                                                        "graph bound engine")))
    # Low-dimensional inputs stay on the chain, whose intermediate bounds also meet forward
    # linear bounds; everything else is bounded on the graph (equal CROWN bounds).
    remaining = _bounds_stage(views, chain if low_dim else None, run, options)
    if not remaining:
        return run.result(Status.VERIFIED, Reason.PROVEN_BY_BOUNDS)
    if run.deadline.expired():
        return run.result(Status.UNKNOWN, Reason.TIMEOUT)
    if options.complete == "none":
        return run.result(Status.UNKNOWN, Reason.INCOMPLETE, msg="complete search disabled")
    relu_chain = chain is not None and chain.is_relu
    strategy = options.complete
    if strategy == "auto":
        # Measured on the 41 easier shared MNIST instances (timeouts scaled 0.2): ReLU BaB
        # solved 41 in 138 s, the per-term MILP path 40 in 1128 s at full timeouts.  On
        # FNN1 (benchmarks/bab_throughput.py) the graph search proves image 3 at eps
        # 0.0402 in 78.7 s (2,272 domains/s), the dense-chain search not in 300 s (224/s).
        strategy = "input-bab+star" if low_dim and relu_chain else "relu-bab"
        if strategy == "relu-bab" and _milp_first(views, options):
            res = _milp_first_stage(views, chain if relu_chain else None, run, remaining,
                                    options)
            if res is not None:
                return res
            remaining = [t for t in remaining if t not in run.outcomes]
    if strategy == "relu-bab":
        if views.graph.unsupported or views.unsplittable():
            return run.result(Status.UNKNOWN, Reason.INCOMPLETE, msg=views.lacking())
        return _graph_bab_stage(views, run, remaining, options)
    if strategy == "milp" and not relu_chain:
        bad = views.milp_lacking()
        if views.graph.unsupported or bad:
            return run.result(Status.UNKNOWN, Reason.INCOMPLETE,
                              msg=views.lacking(bad, "exact MILP encoding"))
        return _milp_stage(views, None, run, remaining, options)
    if not relu_chain:
        why = (f"--complete {strategy} needs a fully connected ReLU model "
               f"({views.chain_reason or 'non-ReLU activations'}); use relu-bab")
        return run.result(Status.UNKNOWN, Reason.INCOMPLETE, msg=why)
    assert chain is not None
    if strategy == "input-bab+star":
        return _low_dim_stage(chain, run, remaining, options)
    if strategy == "input-bab":
        return _input_bab_stage(chain, run, remaining, options)
    if strategy == "chain-bab":
        return _relu_bab_stage(chain, run, remaining, options)
    if strategy == "star":
        return _star_stage(chain, run, remaining, options)
    return _milp_stage(views, chain, run, remaining, options)


# ----------------------------------------------------------------------------- stages

def _milp_first(views: ModelViews, options: VerifyOptions) -> bool:
    """auto: a small model the exact MILP encodes gets the MILP first.  On the planted
    self-test networks (``benchmarks/selftest.py``, 240 instances, 5 s per engine) the
    MILP found 83 of the 90 hidden counterexamples in networks of 29-182 ReLU units,
    graph branch and bound 12; every shared VNN-COMP model has more than 256 units.  Those
    networks have at most 18 inputs; on an image model the graph search is the faster
    proof: DeepPAC's FNN1 (784 inputs, 150 ReLU units) with the MILP first on half of each
    probe's budget ended its 60 s radius searches 15-18% below the exact radius on images
    3, 4 and 15, which it finds without it in 40, 39 and 22 s."""
    if (options.milp_first_units <= 0 or views.network.n_inputs > options.milp_first_inputs
            or views.graph.unsupported or views.milp_lacking()):
        return False
    gm = views.graph
    return sum(gm.size(n) for n in gm.nonlinear()) <= options.milp_first_units


def _milp_first_stage(views: ModelViews, chain: Chain | None, run: _Run,
                      remaining: list[int], options: VerifyOptions
                      ) -> VerificationResult | None:
    """The MILP stage on ``milp_first_share`` of the remaining budget: its verdict, or
    None to go on with branch and bound (terms it proved stay in ``run.outcomes``)."""
    sub = replace(run, deadline=run.deadline.sub(options.milp_first_share))
    res = _milp_stage(views, chain, sub, remaining, options)
    if res.status is Status.UNKNOWN:
        log.info("auto: MILP first gave %s; graph branch and bound next", res.reason.value)
        return None
    return run.result(res.status, res.reason, res.counterexample)


def _attack(network: Network, run: _Run, options: VerifyOptions, rng: np.random.Generator):
    t0 = time.perf_counter()
    sub = run.deadline.sub(options.attack_fraction)
    cands = property_pgd(network, run.prop, rng, options.pgd, sub)
    cex = run.replayer.confirm_batch(cands.x, cands.term, cands.violation)
    low_dim = network.n_inputs <= options.input_split_max_dim
    if cex is None and low_dim and options.corner_pgd is not None and not sub.expired():
        cands = property_pgd(network, run.prop, rng, options.corner_pgd, sub)
        cex = run.replayer.confirm_batch(cands.x, cands.term, cands.violation)
    run.timed("attack_s", t0)
    return cex


def _bounds_stage(views: ModelViews, chain: Chain | None, run: _Run,
                  options: VerifyOptions) -> list[int]:
    """Prove what sound bounds can prove; return the terms left open.  ``chain``: bound on
    the chain (low-dimensional inputs), else on the graph."""
    t0 = time.perf_counter()
    lo, hi, A, b = stacked_terms(run.prop, combine=True)
    if chain is not None:
        lb = engines.crown_lower(chain, lo, hi, A) - b
    else:
        lb = engines.graph_crown_lower(views.graph, lo, hi, A) - b
    best = lb.max(axis=1)
    for t in np.flatnonzero(best > PROOF_TOL):
        run.outcomes[int(t)] = TermOutcome(int(t), Status.VERIFIED, "crown", float(best[t]))
    open_terms = [int(t) for t in np.flatnonzero(best <= PROOF_TOL)]
    run.timed("crown_s", t0)
    optimise = chain is None or chain.is_relu
    if open_terms and options.alpha_crown and optimise and not run.deadline.expired():
        t0 = time.perf_counter()
        idx = np.asarray(open_terms)
        if chain is not None:
            lb2 = engines.alpha_crown_lower(chain, lo[idx], hi[idx], A[idx], run.deadline)
        else:
            lb2 = engines.graph_alpha_crown_lower(views.graph, lo[idx], hi[idx], A[idx],
                                                  run.deadline)
        best2 = (lb2 - b[idx]).max(axis=1)
        for t, v in zip(open_terms, best2, strict=True):
            if v > PROOF_TOL:
                run.outcomes[t] = TermOutcome(t, Status.VERIFIED, "alpha-crown", float(v))
        open_terms = [t for t, v in zip(open_terms, best2, strict=True) if v <= PROOF_TOL]
        run.timed("alpha_crown_s", t0)
    # Most likely violated first: a counterexample ends the search early.
    order = {t: float(best[t]) for t in open_terms}
    return sorted(open_terms, key=lambda t: order[t])


def _input_bab_stage(
    chain: Chain, run: _Run, remaining: list[int], options: VerifyOptions
) -> VerificationResult:
    t0 = time.perf_counter()
    out = input_bab(
        chain, run.prop, engines.crown_bounder(chain), run.replayer, run.deadline,
        remaining, options.input_bab,
    )
    run.timed("input_bab_s", t0)
    run.stats["bab_domains"] = float(out.domains_bounded)
    run.stats["bab_max_queue"] = float(out.max_queue)
    return _bab_result(run, remaining, out.proven, out.counterexample, "input-bab")


def _low_dim_stage(
    chain: Chain, run: _Run, remaining: list[int], options: VerifyOptions
) -> VerificationResult:
    """Input splitting for a short while (it settles easy and falsifiable instances
    fastest), then the exact star search on the rest of the budget.  With more than one
    core, input splitting runs alone for ``input_bab_alone_s`` (no worker processes for
    easy instances), then the star search starts beside it (one worker while it runs,
    every worker afterwards) and input splitting goes on from its open domains."""
    t0 = time.perf_counter()
    bound = engines.crown_bounder(chain)
    workers = worker_count(options.star.workers)
    total = options.input_bab_first_s
    alone = min(total, options.input_bab_alone_s) if workers > 1 else total
    out = input_bab(chain, run.prop, bound, run.replayer, run.deadline.sub(1.0, cap=alone),
                    remaining, options.input_bab)
    job = None
    undecided = not (out.proven or out.counterexample is not None)
    if undecided and alone < total and not run.deadline.expired():
        job = StarJob(chain, run.prop, run.replayer, run.deadline, remaining, options.star,
                      workers, active=workers - 1)
        # input splitting also stops as soon as the star search has its outcome
        sub = run.deadline.sub(1.0, cap=total - alone, stop=job.finished)
        try:
            out = input_bab(chain, run.prop, bound, run.replayer, sub, remaining,
                            options.input_bab, resume=out)
        except BaseException:
            job.cancel()
            raise
    run.timed("input_bab_s", t0)
    run.stats["bab_domains"] = float(out.domains_bounded)
    if out.proven or out.counterexample is not None:
        if job is not None:
            job.cancel()
        return _bab_result(run, remaining, out.proven, out.counterexample, "input-bab")
    if job is None:
        return _star_stage(chain, run, remaining, options)
    job.set_workers(workers)
    t1 = time.perf_counter()
    return _star_done(run, remaining, job.result(), t1)


def _star_stage(
    chain: Chain, run: _Run, remaining: list[int], options: VerifyOptions
) -> VerificationResult:
    t0 = time.perf_counter()
    out = star_verify(chain, run.prop, run.replayer, run.deadline, remaining, options.star)
    return _star_done(run, remaining, out, t0)


def _star_done(run: _Run, remaining: list[int], out: StarOutcome,
               t0: float) -> VerificationResult:
    run.timed("star_s", t0)
    run.stats["star_stars"] = float(out.stars)
    run.stats["star_leaves"] = float(out.leaves)
    run.stats["star_lps"] = float(out.lps)
    run.stats["star_overapprox"] = float(out.overapprox)
    run.stats["star_dropped"] = float(out.dropped)
    run.stats["star_unresolved"] = float(out.unresolved)
    log.info("star: %s", out)
    return _bab_result(run, remaining, out.proven, out.counterexample, "star")


def _relu_bab_stage(
    chain: Chain, run: _Run, remaining: list[int], options: VerifyOptions
) -> VerificationResult:
    from verinet.verify.relu_bab import relu_bab  # on first use: see relu_bab_options

    t0 = time.perf_counter()
    out = relu_bab(chain, run.prop, run.replayer, run.deadline, remaining, options.relu_bab)
    run.timed("relu_bab_s", t0)
    run.stats["bab_domains"] = float(out.domains)
    run.stats["bab_max_depth"] = float(out.max_depth)
    run.stats["bab_max_queue"] = float(out.max_queue)
    run.stats["bab_leaves"] = float(out.leaves)
    return _bab_result(run, remaining, out.proven, out.counterexample, "relu-bab")


def _graph_bab_stage(views: ModelViews, run: _Run, remaining: list[int],
                     options: VerifyOptions) -> VerificationResult:
    from verinet.verify.graph_bab.search import graph_bab  # on first use: see its options

    t0 = time.perf_counter()
    out = graph_bab(views.graph, run.prop, run.replayer, run.deadline, remaining,
                    options.graph_bab)
    run.timed("graph_bab_s", t0)
    run.stats["bab_domains"] = float(out.domains)
    run.stats["bab_max_depth"] = float(out.max_depth)
    run.stats["bab_max_queue"] = float(out.max_queue)
    run.stats["bab_leaves"] = float(out.leaves)
    run.stats["bab_split_units"] = float(out.split_units)
    return _bab_result(run, remaining, out.proven, out.counterexample, "graph-bab")


def _bab_result(
    run: _Run, remaining: list[int], proven: bool, cex: Counterexample | None, method: str
) -> VerificationResult:
    """The verdict of a branch-and-bound search over the ``remaining`` terms."""
    if cex is not None:
        return run.result(Status.FALSIFIED, Reason.WITNESS_CONFIRMED, cex)
    if proven:
        for t in remaining:
            run.outcomes[t] = TermOutcome(t, Status.VERIFIED, method)
        return run.result(Status.VERIFIED, Reason.PROVEN_BY_BAB)
    reason = Reason.TIMEOUT if run.deadline.expired() else Reason.INCOMPLETE
    return run.result(Status.UNKNOWN, reason)


def _milp_stage(
    views: ModelViews, chain: Chain | None, run: _Run, remaining: list[int],
    options: VerifyOptions,
) -> VerificationResult:
    """One MILP per open term: on the dense chain when there is one, else encoded from
    the graph (sparse convolution rows); big-M from LP-tightened sound bounds."""
    unconfirmed = False
    cache: dict[tuple[bytes, bytes], object] = {}  # terms often share one input box
    for t in remaining:
        if run.deadline.expired():
            return run.result(Status.UNKNOWN, Reason.TIMEOUT)
        term = run.prop.terms[t]
        key = (term.box.lower.tobytes(), term.box.upper.tobytes())
        if key not in cache:
            t0 = time.perf_counter()
            cache[key] = (engines.tightened_bounds(chain, term.box, run.deadline,
                                                   options.milp_backend)
                          if chain is not None else
                          engines.graph_tightened_bounds(views.graph, term.box, run.deadline,
                                                         options.milp_backend))
            run.timed("tighten_s", t0)
        bounds = cache[key]
        t0 = time.perf_counter()
        out = (engines.milp_term(chain, term, bounds, run.deadline, options.milp_backend)
               if chain is not None else
               engines.graph_milp_term(views.graph, term, bounds, run.deadline,
                                       options.milp_backend))
        run.timed("milp_s", t0)
        if out.status is Status.VERIFIED:
            run.outcomes[t] = TermOutcome(t, Status.VERIFIED, "milp", out.bound)
            continue
        if out.status is Status.FALSIFIED and out.x is not None:
            cex = run.replayer.confirm(out.x, t)
            if cex is not None:
                return run.result(Status.FALSIFIED, Reason.WITNESS_CONFIRMED, cex)
            unconfirmed = True
            log.warning("MILP candidate for term %d failed replay", t)
            continue
        if run.deadline.expired():
            return run.result(Status.UNKNOWN, Reason.TIMEOUT)
    if all(run.outcomes.get(t) is not None for t in range(len(run.prop.terms))):
        return run.result(Status.VERIFIED, Reason.PROVEN_BY_MILP)
    reason = Reason.WITNESS_UNCONFIRMED if unconfirmed else Reason.INCOMPLETE
    return run.result(Status.UNKNOWN, reason)
