"""Branch and bound over ReLU phases, for high-dimensional inputs (MNIST-size nets).

A domain is (term, splits): the inputs of the term's box on which some root-unstable
ReLUs have a fixed phase (see :mod:`verinet.bounds.split`).  The root's intermediate
bounds are CROWN's tightened by per-unit alpha-CROWN (``root_tighten`` steps per layer).
Each round pops a batch of domains (lowest parent bound first; deepest first once the
queue passes half its cap) and bounds them with one batched call: the parent's
intermediate bounds, clamped by the new split, with the layers after the split re-bounded
by back-substitution, then alpha/beta optimisation of the objective bound (beta-CROWN
style; children start from their parent's alpha and beta).  A domain is dropped when

* some row of its term has a sound lower bound ``> PROOF_TOL`` (as in
  :mod:`verinet.verify.input_bab`), or its bounds show that no input satisfies its
  splits (a sound emptiness proof, see ``verinet.bounds.split.domain_bounds``);
* it has no unstable ReLU left (or at most ``leaf_unstable``) and the exact solver
  decides it: the network is affine on such a domain, so the LP ``min s`` s.t.
  ``s >= A_i f(x) - b_i``, ``x`` in the box, every pre-activation within the domain's
  bounds (the split ones clamped) is exact (a MILP over the few unstable units when
  ``leaf_unstable > 0``).  It goes through :func:`verinet.milp.solve.milp_check_term`,
  whose LP bounds are certified from the row duals.  An LP the solver calls infeasible
  is proven empty only by a certified elastic LP (:func:`_certify_empty`).  A minimiser
  with ``s <= 0`` is replayed; one that fails replay leaves the domain *unknown* (never
  proven), as does a bound in ``(0, PROOF_TOL]``.

Otherwise the domain is split on the unit ``SplitOptions.branching`` picks (default
"fsb": the top BaBSR and intercept candidates ranked by estimated child bounds, see
:mod:`verinet.bounds.branching`).  The box vertex minimising every surviving domain's
linear lower bound, and every LP minimiser, are replayed as counterexample candidates;
only the :class:`~verinet.verify.witness.Replayer` produces witnesses.

Completeness: the children of a domain cover it and every leaf is decided exactly, so
an exhausted queue without unknown leaves proves every term unreachable.

Measured (shared 2-core CPU, one thread): mnist-net_256x4 / mnist_fc_2022 prop_3_0.05
is proven unsat in about 10 s (~1,000 domains) where the MILP path times out.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from verinet.bounds.interval import LayerBounds, affine_interval
from verinet.bounds.linear import DT
from verinet.bounds.split import (
    Domains,
    SplitBounds,
    SplitRoot,
    bound_splits,
    full_bounds,
)
from verinet.bounds.split_root import make_root
from verinet.ir.chain import Chain
from verinet.milp.backend import SolverStatus, make_backend
from verinet.milp.certify import safe_lower_bound
from verinet.milp.encode import ZERO, add_affine, add_input
from verinet.milp.solve import milp_check_term
from verinet.spec.matrices import stacked_terms
from verinet.spec.property import Property, Term
from verinet.types import Counterexample, InputError, Status
from verinet.verify.deadline import Deadline
from verinet.verify.domains import (
    DomainPool,
    SearchStats,
    box_groups,
    concat,
    next_batch,
    take,
)
from verinet.verify.relu_bab_options import DEFAULT_OPTIONS, ReluBabOptions
from verinet.verify.witness import Replayer

log = logging.getLogger(__name__)

PROOF_TOL = 1e-9  # a row counts as proven only when its sound lower bound exceeds this
ROUND_SECONDS = 4.0  # the batch shrinks when a round takes longer (deadline granularity)


@dataclass(frozen=True)
class ReluBabOutcome:
    """``proven`` is True iff every listed term was shown unreachable."""

    proven: bool
    counterexample: Counterexample | None
    domains: int = 0          # domains bounded
    rounds: int = 0
    max_depth: int = 0
    max_queue: int = 0
    leaves: int = 0           # exact leaf solves
    unknown_leaves: int = 0   # leaves the exact solver could not decide
    infeasible: int = 0       # domains shown empty


@dataclass
class _Batch:
    """Domains as tensors: splits (N, U) int8; alpha, beta, lo, hi (N, U) float32 (alpha
    and beta may take any value; lo/hi are rounded outward, so they stay sound); since,
    term, depth (N,) int64; lb (N,) float64, the parent's bound (the priority)."""

    split: Tensor
    alpha: Tensor
    beta: Tensor
    lo: Tensor
    hi: Tensor
    since: Tensor
    term: Tensor
    depth: Tensor
    lb: Tensor

    def __len__(self) -> int:
        return int(self.term.shape[0])

    def take(self, idx: Tensor) -> _Batch:
        return take(self, idx)

    def domains(self) -> Domains:
        return Domains(self.split, self.alpha.to(DT), self.beta.to(DT), self.lo.to(DT),
                       self.hi.to(DT), self.since)


def relu_bab(
    chain: Chain,
    prop: Property,
    replayer: Replayer,
    deadline: Deadline,
    terms: list[int] | None = None,
    options: ReluBabOptions = DEFAULT_OPTIONS,
) -> ReluBabOutcome:
    """Prove the listed terms unreachable or find a confirmed counterexample."""
    if not chain.is_relu:
        raise InputError("relu-bab needs a ReLU chain")
    terms = list(range(len(prop.terms))) if terms is None else list(terms)
    stats = SearchStats()
    for group in box_groups(prop, terms):
        if deadline.expired():
            stats.gave_up = True
            break
        box = prop.terms[group[0]].box
        root = make_root(chain, box.lower, box.upper, options.root_tighten,
                         stop=deadline.expired)
        cex = _search(chain, prop, root, group, replayer, deadline, options, stats)
        if cex is not None:
            return stats.outcome(ReluBabOutcome, False, cex)
        if stats.gave_up:
            break
    log.info("relu-bab: %d domains, %d rounds, depth %d, %d leaves (%d unknown), %d empty",
             stats.domains, stats.rounds, stats.max_depth, stats.leaves, stats.unknown_leaves,
             stats.infeasible)
    return stats.outcome(ReluBabOutcome, True, None)


def _root_batch(root: SplitRoot, group: list[int]) -> _Batch:
    n, U = len(group), root.size
    lo, hi = root.flat_bounds()
    alpha = (hi > -lo).to(torch.float32)
    return _Batch(torch.zeros((n, U), dtype=torch.int8), alpha.expand(n, U).clone(),
                  torch.zeros((n, U), dtype=torch.float32), _round32(lo, -1).expand(n, U).clone(),
                  _round32(hi, 1).expand(n, U).clone(),
                  torch.full((n,), len(root.index), dtype=torch.int64),  # root bounds: as is
                  torch.tensor(group, dtype=torch.int64), torch.zeros(n, dtype=torch.int64),
                  torch.full((n,), -torch.inf, dtype=DT))


def _round32(x: Tensor, direction: int) -> Tensor:
    """float32 copy of ``x`` rounded down (-1) or up (+1)."""
    y = x.to(torch.float32)
    toward = torch.tensor(direction * torch.inf, dtype=torch.float32)
    bad = y.to(DT) > x if direction < 0 else y.to(DT) < x
    return torch.where(bad, torch.nextafter(y, toward), y)


def _search(
    chain: Chain, prop: Property, root: SplitRoot, group: list[int], replayer: Replayer,
    deadline: Deadline, options: ReluBabOptions, stats: SearchStats,
) -> Counterexample | None:
    """Branch and bound over the terms of one box; updates ``stats``."""
    _, _, A_np, b_np = stacked_terms(prop, combine=True)
    A, b = torch.tensor(A_np, dtype=DT), torch.tensor(b_np, dtype=DT)
    pool = DomainPool(_root_batch(root, group))
    split_opts = replace(options.split, iterations=options.root_iterations)
    batch = options.batch
    while len(pool):
        if deadline.expired() or len(pool) > options.max_domains:
            stats.gave_up = True
            return None
        t0 = time.perf_counter()
        dom = pool.pop(batch, depth_first=len(pool) > options.max_domains // 2)
        res = bound_splits(root, dom.domains(), A[dom.term], b[dom.term], split_opts,
                           deadline.expired)
        split_opts = options.split
        stats.rounds += 1
        stats.domains += len(dom)
        stats.infeasible += int(torch.isposinf(res.lower[:, 0]).sum())
        best = res.lower.max(dim=1).values
        alive = ~(best > PROOF_TOL)  # a NaN bound proves nothing
        cex = _check_candidates(root, res.x[alive], dom.term[alive], A, b, replayer)
        if cex is None:
            cex = _leaves(chain, prop, root, dom, res, alive, replayer, deadline, options,
                          stats)
        if cex is not None or stats.gave_up:
            return cex
        keep = torch.nonzero(alive).reshape(-1)
        if len(keep):
            pool.push(_children(root, dom.take(keep), res, keep, best[keep]))
            stats.max_depth = max(stats.max_depth, int(dom.depth[keep].max()) + 1)
        stats.max_queue = max(stats.max_queue, len(pool))
        batch = next_batch(batch, time.perf_counter() - t0, options.batch, ROUND_SECONDS)
        log.debug("relu-bab round %d: %d bounded, %d split, queue %d, worst %.4g, %.1f s",
                  stats.rounds, len(dom), len(keep), len(pool), float(best.min()),
                  deadline.elapsed())
    return None


def _leaves(
    chain: Chain, prop: Property, root: SplitRoot, dom: _Batch, res: SplitBounds,
    alive: Tensor, replayer: Replayer, deadline: Deadline, options: ReluBabOptions,
    stats: SearchStats,
) -> Counterexample | None:
    """Decide the alive domains with few unstable units exactly; clears their ``alive``."""
    n_unstable = res.unstable.sum(dim=1)
    for i in torch.nonzero(alive & (n_unstable <= options.leaf_unstable)).reshape(-1):
        if deadline.expired():
            stats.gave_up = True
            return None
        bounds = _leaf_bounds(chain, root, res, int(i))
        verdict, cex = _decide_leaf(chain, prop.terms[int(dom.term[i])], int(dom.term[i]),
                                    bounds, replayer, deadline, options)
        stats.leaves += 1
        if cex is not None:
            return cex
        if verdict or n_unstable[i] == 0:
            stats.unknown_leaves += int(not verdict)
            alive[i] = False
    return None


def _children(root: SplitRoot, parent: _Batch, res: SplitBounds, keep: Tensor,
              best: Tensor) -> _Batch:
    """Two children per domain, split on the unit the bounding step picked."""
    pos = res.branch[keep]
    rows = torch.arange(len(keep))
    beta = res.beta[keep].to(torch.float32)
    beta[rows, pos] = 0.0
    common = dict(alpha=res.alpha[keep].to(torch.float32), beta=beta,
                  lo=_round32(res.lo[keep], -1), hi=_round32(res.hi[keep], 1),
                  since=root.layer_at(pos), term=parent.term, depth=parent.depth + 1, lb=best)
    kids = []
    for phase in (1, -1):
        split = parent.split.clone()
        split[rows, pos] = phase
        kids.append(_Batch(split=split, **common))
    return concat(kids)


def _check_candidates(
    root: SplitRoot, x: Tensor, terms: Tensor, A: Tensor, b: Tensor, replayer: Replayer
) -> Counterexample | None:
    """Replay the candidates whose chain outputs violate their term (torch forward: numpy
    BLAS may run multi-threaded on a loaded machine)."""
    if not len(terms):
        return None
    net, h = root.net, x
    for j in range(len(net.W)):
        h = h @ net.W[j].T + net.b[j]
        if j < len(net.kinds):
            h = h.clamp(min=0.0)
    viol = ((A[terms] @ h.unsqueeze(-1)).squeeze(-1) - b[terms]).max(dim=1).values
    if (viol <= 0).any():
        return replayer.confirm_batch(x.numpy(), terms.numpy(), viol.numpy())
    return None


# ----------------------------------------------------------------------------- exact leaves


def _leaf_bounds(chain: Chain, root: SplitRoot, res: SplitBounds, i: int) -> LayerBounds:
    """The domain's layer bounds (split units clamped), outputs by interval arithmetic."""
    lows, highs = full_bounds(root, res.lo[i: i + 1], res.hi[i: i + 1])
    lo = [v[0].numpy() for v in lows]
    hi = [v[0].numpy() for v in highs]
    out_lo, out_hi = affine_interval(chain.affines[-1], np.maximum(lo[-1], 0.0),
                                     np.maximum(hi[-1], 0.0))
    return LayerBounds(tuple(lo) + (out_lo,), tuple(hi) + (out_hi,), "relu-bab")


def _decide_leaf(
    chain: Chain, term: Term, t: int, bounds: LayerBounds, replayer: Replayer,
    deadline: Deadline, options: ReluBabOptions,
) -> tuple[bool, Counterexample | None]:
    """(proven, confirmed counterexample) for one domain by LP (MILP if units remain)."""
    limit = max(0.1, min(options.leaf_time, deadline.remaining()))
    out = milp_check_term(chain, term.box, term.unsafe, bounds, backend=options.backend,
                          time_limit=limit, tol=PROOF_TOL, may_be_empty=True)
    if out.status is Status.VERIFIED:
        return True, None
    if out.status is Status.FALSIFIED and out.candidate is not None:
        cex = replayer.confirm(out.candidate, t)
        if cex is None:
            log.warning("relu-bab: LP candidate for term %d failed replay", t)
        return False, cex
    if out.solver_status is SolverStatus.INFEASIBLE and _all_stable(bounds):
        return _certify_empty(chain, term, bounds, options.backend, limit), None
    return False, None


def _all_stable(bounds: LayerBounds) -> bool:
    return not any(bounds.unstable(k).any() for k in range(len(bounds.lower) - 1))


def _certify_empty(chain: Chain, term: Term, bounds: LayerBounds, backend: str,
                   limit: float) -> bool:
    """True only if a certified LP proves that no input of the box meets ``bounds``.

    Every unit is stable under ``bounds``, so on the domain the network equals its
    linearisation ``g`` (active units pass, inactive ones are 0).  The elastic LP
    ``min t`` s.t. ``lo - t <= z(x) <= hi + t`` on ``g``'s pre-activations, ``x`` in the
    box, has ``t = 0`` feasible at every domain point, so a certified bound ``> 0``
    proves the domain empty.  The ``z`` columns carry interval bounds of ``g`` on the
    box (valid for every ``x``), so the LP is feasible and its bound certifiable.
    """
    be = make_backend(backend)
    box = term.box
    h = add_input(be, box)
    h_lo, h_hi = box.lower, box.upper
    cols, lo_all, hi_all, gap = [], [], [], 0.0
    for k, layer in enumerate(chain.affines[:-1]):
        z_lo, z_hi = affine_interval(layer, h_lo, h_hi)
        z = add_affine(be, layer, h, z_lo, z_hi)
        lo, hi = bounds.lower[k], bounds.upper[k]
        gap = max(gap, float(np.max(np.maximum(lo - z_lo, z_hi - hi), initial=0.0)))
        cols.append(z)
        lo_all.append(lo)
        hi_all.append(hi)
        active = lo >= 0
        h = np.where(active, z, ZERO)
        h_lo, h_hi = np.where(active, z_lo, 0.0), np.where(active, z_hi, 0.0)
    t = be.add_vars([0.0], [gap + 1.0])
    z, lo, hi = np.concatenate(cols), np.concatenate(lo_all), np.concatenate(hi_all)
    q, n = z.size, be.num_vars
    r = np.arange(q)
    rows = np.concatenate([r, r, q + r, q + r])
    cidx = np.concatenate([z, np.full(q, t[0]), z, np.full(q, t[0])])
    vals = np.concatenate([np.ones(q), np.ones(q), np.ones(q), -np.ones(q)])
    be.add_rows(sp.csr_matrix((vals, (rows, cidx)), shape=(2 * q, n)),
                np.concatenate([lo, np.full(q, -np.inf)]),
                np.concatenate([np.full(q, np.inf), hi]))
    be.set_objective(t, [1.0])
    be.set_time_limit(limit)
    res = be.solve(relax=True)
    if res.status is not SolverStatus.OPTIMAL or res.row_duals is None:
        return False
    return safe_lower_bound(be.model(), res.row_duals) > 0.0
