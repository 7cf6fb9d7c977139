"""Certify one sample: attacks -> CROWN -> verdict at eps -> exact MILP -> bisection.

Stages (each bounded by the sample's deadline; a stage that cannot run is skipped):

1. **clean check** — a sample the network already misclassifies (ties count) gets the
   exact radius 0 and is not certified.
2. **attacks** — minimal-norm attacks (DeepFool, FMN, ...) give confirmed witnesses;
   their smallest distance ``U`` is the first upper bound.
3. **CROWN bisection** — CROWN on a grid of balls below ``U`` (batched): a sound lower
   bound; then the **Lipschitz radii** (local gradient bounds on a ball, and the global
   constant, :mod:`verinet.lipschitz`), sound too, recorded per sample and taken as the
   lower end when larger.
4. **verdict at eps** (when an eps is given and the bracket does not decide it) — the
   complete verifier (:func:`verinet.verify.portfolio.verify`) on the robustness
   property at eps.
5. **exact radius** (``radius=True``, piecewise-linear models) — the MILP ``min t`` over
   the ball of radius ``U`` (:func:`verinet.milp.radius.radius_of`), encoded from the
   dense ReLU chain or from the graph, with LP-tightened big-M; its minimiser is replayed
   as a witness and its dual bound is the lower end.  It runs first only when it needs at
   most ``SMALL_MILP`` binaries, else on the time the next stage leaves.
6. **bisection** (or one branch-and-bound tree, ``search="tree"``) with the complete
   verifier on what is left of the gap; an unknown answer (timeout) lowers the probe
   instead of moving the bracket.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from verinet.bounds.fp import reproducible_lower
from verinet.certify import RADIUS_SEARCHES
from verinet.certify.bracket import Bracket, Sample, confirm_witness
from verinet.certify.crown_radius import certified_margins, crown_radius
from verinet.certify.result import LipschitzBound, SampleReport, SampleStatus, Witness
from verinet.ir.chain import Chain
from verinet.ir.graph import Network
from verinet.spec.property import Property
from verinet.types import InputError, Reason, Sandwich, Status
from verinet.verify.deadline import Deadline
from verinet.verify.portfolio import VerifyOptions
from verinet.verify.portfolio import verify as portfolio_verify
from verinet.verify.views import ModelViews
from verinet.verify.witness import OnnxEval, closest_scale

log = logging.getLogger(__name__)

ATTACKS = ("deepfool", "fmn", "pgd")
ATTACK_SHARE = 0.25  # no new attack starts after this share of the sample's time
# Measured on DeepPAC's FNN1 (784-50-50-50-10): the radius MILP with 45 binaries found no
# incumbent in 120 s, while ReLU branch and bound proved eps 0.0208 in 7 s; so the MILP
# runs first only for encodings this small, else on the time bisection leaves.
SMALL_MILP = 24
# mnist-net_256x2, image 23: the proof just below the witness (eps 0.0519) needs about
# 40 s alone, so the first probe may use most of the time (measured: exact in 44 s).
FIRST_PROBE_SHARE = 0.75
# The bisection's wide-bracket climb (see _bisection_stage): a bracket is narrow when
# upper <= NARROW * lower (the benchmarks' "tight"); a climbing probe starts CLIMB_STEP
# above the certified end and gets CLIMB_SHARE of the remaining time.
NARROW = 1.25
CLIMB_STEP = 0.1
CLIMB_SHARE = 0.25
# Shares of the remaining time for the bound-only lower ends before the search: a grid
# round of CROWN on a CIFAR ConvSmall takes about 6.5 s (16 balls, float64), the
# Lipschitz radius's about 2 s; without caps they took 20 + 6 of an image's 60 s.
CROWN_SHARE = 0.15
LIPSCHITZ_SHARE = 0.05
# A probe that timed out is retried with all the time left once the bisection has
# nothing else to try, when at least this much is left (seconds).
RETRY_MIN = 2.0
# The final radius MILP on a graph (non-chain) model runs only up to this many binaries:
# at 1,852 (CIFAR ConvSmall) or 2,257 (CNN1) it never closed a bracket in 60 s.
GRAPH_MILP_MAX = 500


def make_attack(name: str) -> Any:
    """A default-configured attack by name (:data:`verinet.attacks.REGISTRY`)."""
    from verinet.attacks import REGISTRY

    if name not in REGISTRY:
        raise InputError(f"unknown attack {name!r}; choose from {', '.join(REGISTRY)}")
    return REGISTRY[name]()


@dataclass(frozen=True)
class CertifyOptions:
    """Per-sample settings.  ``tolerance``: a radius is exact when its bracket is at most
    this wide.  ``attacks``: names from :data:`verinet.attacks.REGISTRY`."""

    eps: float | None = None
    radius: bool = False
    timeout: float = 60.0
    tolerance: float = 1e-3
    domain: tuple[float, float] = (0.0, 1.0)
    attacks: tuple[str, ...] = ATTACKS
    milp: bool = True
    backend: str = "highs"
    seed: int = 0
    verify: VerifyOptions = field(default_factory=VerifyOptions)
    # how the radius bracket is closed on high-dimensional models the graph search can
    # split: "tree" (one branch-and-bound tree, verinet.verify.graph_bab.radius) or
    # "bisection" (a complete verification per probe, the default); low-dimensional
    # models always bisect
    search: str = "bisection"

    def __post_init__(self) -> None:
        if self.eps is not None and (not math.isfinite(self.eps) or self.eps < 0):
            raise InputError(f"eps must be a finite number >= 0, got {self.eps}")
        if not (math.isfinite(self.timeout) and self.timeout > 0):
            raise InputError(f"timeout must be a positive number of seconds, got {self.timeout}")
        if not self.tolerance > 0:
            raise InputError(f"tolerance must be > 0, got {self.tolerance}")
        if self.eps is None and not self.radius:
            raise InputError("give an eps, ask for radii, or both")
        if self.search not in RADIUS_SEARCHES:
            raise InputError(f"radius search must be one of {', '.join(RADIUS_SEARCHES)}, got "
                             f"{self.search!r}")


@dataclass
class _Ctx:
    """Everything one sample's stages share (mutable, private to this module)."""

    network: Network
    views: ModelViews
    onnx_eval: OnnxEval | None
    sample: Sample
    options: CertifyOptions
    deadline: Deadline
    rng: np.random.Generator
    bracket: Bracket = field(default_factory=Bracket)
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    attacks: dict[str, float] = field(default_factory=dict)
    lipschitz: LipschitzBound | None = None

    def timed(self, key: str, t0: float) -> None:
        self.timings[key] = self.timings.get(key, 0.0) + time.monotonic() - t0

    @property
    def chain(self) -> Chain | None:
        """The dense chain of a fully connected model (the MILP radius works on it)."""
        return self.views.chain if self.views.dense else None


def certify_sample(network: Network, onnx_eval: OnnxEval | None, index: int, x0: np.ndarray,
                   label: int, options: CertifyOptions, views: ModelViews | None = None
                   ) -> SampleReport:
    """Certify one sample (``x0`` flat raw input) within ``options.timeout`` seconds.
    ``views``: the model's engine views when the caller keeps them across samples
    (derived here else)."""
    start = time.monotonic()
    lo, hi = options.domain
    n = network.n_inputs
    sample = Sample(np.asarray(x0, dtype=np.float64).reshape(-1), int(label),
                    (np.full(n, lo, dtype=np.float64), np.full(n, hi, dtype=np.float64)))
    y = network.evaluate(sample.x0)
    others = np.delete(np.arange(y.size), sample.label)
    rival = int(others[np.argmax(y[others])])
    if y[rival] >= y[sample.label]:
        return _misclassified(index, sample, rival, options, start)
    views = ModelViews(network) if views is None else views
    rng = np.random.default_rng([options.seed, index])
    ctx = _Ctx(network, views, onnx_eval, sample, options, Deadline(options.timeout, start), rng)
    _attack_stage(ctx)
    if not views.graph.unsupported:
        _crown_stage(ctx)
        _lipschitz_stage(ctx)
    if options.eps is not None:
        _eps_stage(ctx, options.eps)
    if options.radius:
        milp = options.milp and _milp_encodable(ctx)
        if milp:  # small encodings first: the MILP then usually closes the gap at once
            _milp_stage(ctx, max_binaries=SMALL_MILP)
        if _tree_search(ctx):
            _tree_stage(ctx)
        else:
            _bisection_stage(ctx)
        if milp:
            _milp_stage(ctx, max_binaries=None)
    return _report(ctx, index, start)


def _misclassified(index: int, sample: Sample, predicted: int, options: CertifyOptions,
                   start: float) -> SampleReport:
    w = Witness(sample.x0, predicted, 0.0, "clean")
    status = SampleStatus.MISCLASSIFIED
    return SampleReport(index, sample.label, predicted, status, Reason.WITNESS_CONFIRMED,
                        options.eps, Sandwich(0.0, 0.0, "clean", "clean"), True, w,
                        time.monotonic() - start, message="misclassified without perturbation")


# ----------------------------------------------------------------------------- stages


def _attack_stage(ctx: _Ctx) -> None:
    t0 = time.monotonic()
    for name in ctx.options.attacks:
        if ctx.deadline.elapsed() > ATTACK_SHARE * ctx.options.timeout:
            break
        attack = make_attack(name)
        if attack.minimal:
            _run_attack(ctx, attack, name, None)
        else:
            _attack_bisection(ctx, attack, name)
    _line_search(ctx)
    ctx.timed("attacks", t0)


def _line_search(ctx: _Ctx) -> None:
    """Shrink the closest witness towards the sample along their segment: the smallest
    scale still misclassified (:func:`closest_scale`), then replayed."""
    w, s = ctx.bracket.witness, ctx.sample
    if w is None or w.distance <= 0:
        return
    hi = closest_scale(ctx.network, s.x0, w.x, s.label)
    if hi < 1.0:
        ctx.bracket.offer(confirm_witness(ctx.network, ctx.onnx_eval, s,
                                          s.x0 + hi * (w.x - s.x0), w.method + "+line"))


def _run_attack(ctx: _Ctx, attack: Any, name: str, eps: float | None) -> bool:
    """Run one attack; offer its result as a witness; True if it was confirmed."""
    s = ctx.sample
    res = attack(ctx.network, s.x0[None, :], np.array([s.label]),
                 eps=eps, domain=(float(s.domain[0][0]), float(s.domain[1][0])), rng=ctx.rng)
    ctx.attacks.setdefault(name, math.inf)
    if not bool(res.success[0]):
        return False
    w = confirm_witness(ctx.network, ctx.onnx_eval, s, res.x[0], name)
    if w is None:
        log.info("%s: candidate at %.6g failed replay", name, float(res.distance[0]))
        return False
    ctx.attacks[name] = min(ctx.attacks[name], w.distance)
    ctx.bracket.offer(w)
    return True


def _attack_bisection(ctx: _Ctx, attack: Any, name: str, steps: int = 6) -> None:
    """A fixed-eps attack: at the requested eps, then bisection on eps below the best
    witness (radius runs only); failures prove nothing."""
    eps = ctx.options.eps
    if eps is not None and ctx.bracket.upper > eps:
        _run_attack(ctx, attack, name, eps)
    if not ctx.options.radius:
        return
    lo, hi = 0.0, ctx.bracket.upper
    if not math.isfinite(hi):
        hi = ctx.sample.max_distance
        if not _run_attack(ctx, attack, name, hi):
            return
        hi = ctx.bracket.upper
    for _ in range(steps):
        if ctx.deadline.elapsed() > ATTACK_SHARE * ctx.options.timeout:
            return
        mid = 0.5 * (lo + hi)
        if _run_attack(ctx, attack, name, mid):
            hi = ctx.bracket.upper
        else:
            lo = mid


def _crown_stage(ctx: _Ctx) -> None:
    t0 = time.monotonic()
    top = ctx.bracket.upper
    if ctx.options.eps is not None and not math.isfinite(top):
        top = max(ctx.options.eps * 2.0, 1e-3)
    eps = crown_radius(ctx.views.graph, ctx.sample.x0, ctx.sample.label,
                       min(top, ctx.sample.max_distance), ctx.sample.domain,
                       deadline=ctx.deadline.sub(CROWN_SHARE))
    if eps > 0:
        ctx.bracket.prove_robust(eps, "crown")
    ctx.timed("crown", t0)


def _lipschitz_stage(ctx: _Ctx) -> None:
    """The sound Lipschitz radii (local bounds on the ball, and the global constant): the
    larger joins the sandwich as a lower end when it is the largest."""
    from verinet.lipschitz import lipschitz_radius
    from verinet.lipschitz.global_bound import global_lipschitz
    from verinet.lipschitz.radius import point_margins

    t0 = time.monotonic()
    gm, s = ctx.views.graph, ctx.sample
    glob = gm.cached(("lipschitz", "linf"), lambda: global_lipschitz(gm, "linf"))
    top = min(ctx.bracket.upper, s.max_distance)
    local = lipschitz_radius(gm, s.x0, s.label, top, s.domain,
                             deadline=ctx.deadline.sub(LIPSCHITZ_SHARE))
    margins = np.asarray(local.margins) if local.margins else point_margins(gm, s.x0, s.label)
    L = glob.margins(s.label)  # type: ignore[attr-defined]
    g = float(np.min(np.where(L > 0, margins / np.where(L > 0, L, 1.0), np.inf)))
    g = min(max(g, 0.0), s.max_distance) if (margins > 0).all() else 0.0
    ctx.lipschitz = LipschitzBound(local.radius, g, local.ball)
    if ctx.lipschitz.best > 0:
        ctx.bracket.prove_lower(ctx.lipschitz.best, "lipschitz")
    ctx.timed("lipschitz", t0)


def _verify_at(ctx: _Ctx, eps: float, fraction: float) -> Status:
    """Run the complete verifier at ``eps`` with a share of the remaining time."""
    prop = Property.robustness(ctx.sample.ball(eps), ctx.sample.label, ctx.network.n_outputs)
    sub = ctx.deadline.sub(fraction)
    if sub.seconds < 0.05:
        return Status.UNKNOWN
    # Our attacks already ran: the verifier's own PGD gets a small share of each probe.
    opts = replace(ctx.options.verify, seed=int(ctx.rng.integers(2**31)), attack_fraction=0.05)
    res = portfolio_verify(ctx.network, prop, ctx.onnx_eval, sub.seconds, opts, sub, ctx.views)
    if res.status is Status.VERIFIED:
        ctx.bracket.prove_robust(eps, "verify:" + res.reason.value)
    elif res.status is Status.FALSIFIED:
        assert res.counterexample is not None
        ctx.bracket.offer(confirm_witness(ctx.network, ctx.onnx_eval, ctx.sample,
                                          res.counterexample.x, "verify"))
    else:
        ctx.notes.append(f"eps {eps:.6g}: {res.reason.value}")
    log.debug("probe at eps %.6g with %.1f s: %s", eps, sub.seconds, res.status.value)
    return res.status


def _eps_stage(ctx: _Ctx, eps: float) -> None:
    b = ctx.bracket
    if b.upper <= eps or b.robust_at >= eps:
        return
    t0 = time.monotonic()
    _verify_at(ctx, eps, 0.5 if ctx.options.radius else 1.0)
    ctx.timed("verify", t0)


def _milp_encodable(ctx: _Ctx) -> bool:
    """The radius MILP runs on the dense ReLU chain, or on the graph's encoding when every
    nonlinear node is piecewise linear (ReLU, LeakyReLU, Clip, MaxPool)."""
    if ctx.chain is not None:
        return ctx.chain.is_relu
    return not ctx.views.graph.unsupported and not ctx.views.milp_lacking()


def _milp_stage(ctx: _Ctx, max_binaries: int | None) -> None:
    from verinet.milp.problem import chain_problem, graph_problem
    from verinet.milp.radius import radius_of

    b, chain, s = ctx.bracket, ctx.chain, ctx.sample
    if (b.gap <= ctx.options.tolerance or ctx.deadline.expired()
            or b.robust_at >= s.max_distance):
        return
    t0 = time.monotonic()
    R = min(b.upper, s.max_distance)
    box = s.ball(R)
    budget = 0.2 * ctx.deadline.remaining()
    if chain is not None:
        from verinet.bounds.crown import crown_layer_bounds
        from verinet.milp.tighten import Tightening, tighten_bounds

        bounds = crown_layer_bounds(chain, box)
        if max_binaries is not None and _n_unstable(bounds) > max_binaries:
            ctx.timed("milp", t0)
            return
        bounds = tighten_bounds(chain, box, bounds, Tightening.LP, ctx.options.backend,
                                time_budget=budget)
        problem = chain_problem(chain, bounds)
    else:
        from verinet.milp.graph_encode import graph_node_bounds, n_binaries
        from verinet.milp.graph_tighten import tighten_graph

        gm = ctx.views.graph
        nodes = graph_node_bounds(gm, box)
        if n_binaries(gm, nodes) > (GRAPH_MILP_MAX if max_binaries is None else max_binaries):
            ctx.timed("milp", t0)
            return
        problem = graph_problem(gm, tighten_graph(gm, box, nodes, ctx.options.backend,
                                                  time_budget=budget))
    margins = certified_margins(ctx.views.graph, s.x0, s.label, np.array([R]), s.domain)[0]
    classes = [j for j in range(problem.n_outputs) if j != s.label]
    first = b.witness.predicted if b.witness is not None else -1
    order = sorted((j for j, m in zip(classes, margins, strict=True) if m <= 0),
                   key=lambda j: (j != first, float(margins[classes.index(j)])))
    out = radius_of(problem, s.x0, s.label, box, order, b.lower,
                      (0.8 if max_binaries is None else 0.5) * ctx.deadline.remaining(),
                      ctx.options.backend)
    ctx.timed("milp", t0)
    if out.solver_errors:
        ctx.notes.append(f"radius MILP: {out.solver_errors} solver error(s), floor kept")
    if out.candidate is not None:
        _offer_milp_candidate(ctx, out.candidate, out.objective)
    lower = reproducible_lower(out.lower)
    if lower > b.lower:
        b.prove_lower(lower, "milp", tol=1e-6)


def _n_unstable(bounds: Any) -> int:
    return sum(int(((lo < 0) & (hi > 0)).sum())
               for lo, hi in zip(bounds.lower[:-1], bounds.upper[:-1], strict=True))


def _offer_milp_candidate(ctx: _Ctx, x: np.ndarray, t: float) -> None:
    """The MILP minimiser sits on the decision boundary up to solver tolerances: push it
    slightly outward until the replay confirms it (or give up)."""
    s = ctx.sample
    d = x - s.x0
    for grow in (0.0, 1e-7, 1e-6, 1e-5, 1e-4, ctx.options.tolerance / 4):
        step = grow * max(t, 1e-9)
        x1 = s.x0 + d * (1.0 + grow) + np.sign(d) * step * (grow > 0)
        if ctx.bracket.offer(confirm_witness(ctx.network, ctx.onnx_eval, s, x1, "milp")):
            return


def _bisection_stage(ctx: _Ctx) -> None:
    """Close the bracket with the complete verifier, one probe at a time.  An unknown
    answer (timeout) caps later probes below it; the bracket itself moves only on proofs
    and witnesses.

    - **Narrow bracket** (``upper <= NARROW * lower``): the probe sits just below the
      closest witness (minimal-norm attacks are usually within a few percent of the
      radius, so one proof there often ends the search) with ``FIRST_PROBE_SHARE`` of
      the remaining time; once that was tried, probes bisect with a third of it.
    - **Wide bracket**: probes climb from the certified end, ``lower * (1 + step)``
      (never above the middle of what is left), ``step`` doubling after each proof and
      halving after each unknown, with ``CLIMB_SHARE`` of the remaining time each.  A
      proof far below the witness is cheap and a proof at a point covers every smaller
      ball, so this spends the budget on proofs that move the bracket, where a probe at
      the witness would burn most of it on a ball the search cannot decide (CIFAR
      ConvSmall, image 7: eps 0.025 proven in 5.5 s, nothing at 0.03-0.06 in 30 s each,
      witness at 0.080).

    When the timed-out probes have capped the search onto the certified end and time is
    left (``RETRY_MIN``), the lowest of them is tried again with all of it; after a proof
    the search goes on below the next timed-out probe."""
    b, tol = ctx.bracket, ctx.options.tolerance
    cap = min(b.upper, ctx.sample.max_distance)
    t0 = time.monotonic()
    if not math.isfinite(b.upper) and b.robust_at < cap and ctx.deadline.remaining() > 0.5:
        # No witness anywhere: first ask whether the whole domain is robust.
        _verify_at(ctx, cap, 0.34)
    near_tried, step = False, CLIMB_STEP
    failed: list[float] = []  # probes that timed out, each with a share of the time
    while b.robust_at < ctx.sample.max_distance and ctx.deadline.remaining() > 0.5:
        if min(b.upper, cap) - b.lower <= tol:
            # Nothing left below the cap: retry the lowest timed-out probe that would still
            # move the bracket, now with all the time left (it had a share of it before).
            retry = [p for p in failed if b.lower + tol < p < b.upper]
            if b.upper - b.lower <= tol or not retry or ctx.deadline.remaining() < RETRY_MIN:
                break
            if _verify_at(ctx, min(retry), 1.0) is not Status.VERIFIED:
                break
            failed = [p for p in failed if p > b.lower]  # the search goes on above it
            cap = min(failed, default=min(b.upper, ctx.sample.max_distance))
            continue
        top = min(b.upper, cap)
        narrow = b.lower > 0 and top <= NARROW * b.lower
        if narrow and not near_tried and math.isfinite(b.upper) and cap >= b.upper:
            probe, share, near_tried = b.upper - 0.98 * tol, FIRST_PROBE_SHARE, True
        elif narrow or b.lower <= 0:
            probe, share = 0.5 * (b.lower + top), 0.34
        else:
            probe = min(b.lower * (1.0 + step), 0.5 * (b.lower + top))
            share = CLIMB_SHARE
        status = _verify_at(ctx, probe, share)
        if status is Status.UNKNOWN:
            cap, step = probe, 0.5 * step
            failed.append(probe)
        elif status is Status.VERIFIED:
            step = 2.0 * step
    ctx.timed("bisection", t0)


def _tree_search(ctx: _Ctx) -> bool:
    """Whether the radius is searched with one branch-and-bound tree on the graph."""
    views, opts = ctx.views, ctx.options
    return (opts.search == "tree" and ctx.network.n_inputs > opts.verify.input_split_max_dim
            and not views.graph.unsupported and not views.unsplittable())


def _tree_stage(ctx: _Ctx) -> None:
    """Close the bracket with one branch-and-bound tree (:class:`RadiusSearch`): grown on
    the ball just below the closest witness, it shows a certified radius at any moment;
    each counterexample it confirms moves the witness (and the ball) down, the tree going
    on on the smaller ball.  It stops when the bracket is closed, the deadline passes, the
    queue is full or a counterexample fails to improve the witness."""
    from verinet.verify.graph_bab.radius import RadiusSearch

    b, tol, s = ctx.bracket, ctx.options.tolerance, ctx.sample
    search = RadiusSearch(ctx.views.graph, ctx.network, ctx.onnx_eval, s.x0, s.label,
                          s.domain, ctx.options.verify.graph_bab)
    t0 = time.monotonic()
    while ctx.deadline.remaining() > 0.5 and b.robust_at < s.max_distance:
        cap = min(b.upper, s.max_distance)
        if cap - b.lower <= tol:
            break
        top = cap - 0.98 * tol if math.isfinite(b.upper) else cap
        if top <= b.lower:
            break
        step = search.run(top, ctx.deadline)
        if step.lower > b.robust_at:
            b.prove_robust(step.lower, "radius-bab")
        if step.counterexample is not None:
            w = confirm_witness(ctx.network, ctx.onnx_eval, s, step.counterexample.x,
                                "radius-bab")
            if not b.offer(w):
                ctx.notes.append("radius search: a counterexample did not improve the witness")
                break
        elif not step.proven:
            if not ctx.deadline.expired():
                ctx.notes.append(f"radius search: queue full ({step.open_domains} domains)")
            break
    ctx.notes.append(f"radius search: {search.stats.domains} domains in "
                     f"{search.stats.rounds} rounds")
    ctx.timed("radius_bab", t0)


# ----------------------------------------------------------------------------- report


def _proof_reason(method: str) -> Reason:
    if method == "milp":
        return Reason.PROVEN_BY_MILP
    if method.startswith("verify:"):
        return Reason(method.split(":", 1)[1])
    return Reason.PROVEN_BY_BOUNDS


def _report(ctx: _Ctx, index: int, start: float) -> SampleReport:
    b, eps, opts = ctx.bracket, ctx.options.eps, ctx.options
    status, reason = SampleStatus.NOT_ASKED, Reason.NONE
    if eps is not None:
        if b.upper <= eps:
            status, reason = SampleStatus.FALSIFIED, Reason.WITNESS_CONFIRMED
        elif b.robust_at >= eps or b.lower > eps:
            status = SampleStatus.VERIFIED
            reason = _proof_reason(b.robust_by if b.robust_at >= eps else b.lower_by)
        else:
            status = SampleStatus.UNKNOWN
            reason = Reason.TIMEOUT if ctx.deadline.expired() else Reason.INCOMPLETE
    sandwich = b.sandwich()
    everywhere = b.robust_at >= ctx.sample.max_distance
    if everywhere:
        ctx.notes.append("robust on the whole input domain (the radius is infinite)")
    exact = sandwich.gap <= opts.tolerance or everywhere
    w = b.witness
    predicted = ctx.sample.label  # misclassified samples returned before the stages
    return SampleReport(index, ctx.sample.label, predicted, status, reason, eps, sandwich,
                        exact, w, time.monotonic() - start, tuple(sorted(ctx.timings.items())),
                        "; ".join(ctx.notes), tuple(ctx.attacks.items()),
                        lipschitz=ctx.lipschitz)
