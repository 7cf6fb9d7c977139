"""Branch and bound over ReLU phases, for high-dimensional inputs (MNIST-size nets).

A domain is (term, splits): the inputs of the term's box on which some root-unstable
ReLUs have a fixed phase (see :mod:`verinet.bounds.split`).  Each round pops a batch of
domains (lowest lower bound first; deepest first once the queue passes half its cap) and
bounds them with one batched call (clamped intermediate bounds re-bounded under the
splits, then alpha/beta optimisation of the objective bound, children inheriting their
parent's alpha and beta).  A domain is dropped when

* some row of its term has a sound lower bound ``> PROOF_TOL`` (as in
  :mod:`verinet.verify.input_bab`), or its bounds show that no input satisfies its
  splits (a sound emptiness proof, see ``domain_bounds``);
* it has no unstable ReLU left (or at most ``leaf_unstable``) and the exact solver
  decides it: the network is affine on such a domain, so the LP ``min s`` s.t.
  ``s >= A_i f(x) - b_i``, ``x`` in the box, every pre-activation within the domain's
  bounds (the split ones clamped) is exact (a MILP over the few unstable units when
  ``leaf_unstable > 0``).  It goes through :func:`verinet.milp.solve.milp_check_term`,
  whose LP bounds are certified from the row duals.  An LP the solver calls infeasible
  is proven empty only by a certified elastic LP (:func:`_certify_empty`).  A minimiser
  with ``s <= 0`` is replayed; one that fails replay leaves the domain *unknown* (never
  proven), as does a bound in ``(0, PROOF_TOL]``.

Otherwise the domain is split on its unit with the highest branching score (BaBSR by
default; ``SplitOptions.branching``).  The box vertex minimising every surviving
domain's linear lower bound, and every LP minimiser, are replayed as counterexample
candidates; only the :class:`~verinet.verify.witness.Replayer` produces witnesses.

Completeness: the children of a domain cover it, every leaf is decided exactly, so an
exhausted queue without unknown leaves proves every term unreachable.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from verinet.attacks.property_pgd import stacked_terms
from verinet.bounds.interval import LayerBounds, affine_interval
from verinet.bounds.linear import DT
from verinet.bounds.split import SplitOptions, SplitRoot, bound_splits, make_root
from verinet.ir.chain import Chain
from verinet.milp.backend import SolverStatus, make_backend
from verinet.milp.certify import safe_lower_bound
from verinet.milp.encode import ZERO, add_affine, add_input
from verinet.milp.solve import milp_check_term
from verinet.spec.property import Property, Term
from verinet.types import Counterexample, InputError, Status
from verinet.verify.deadline import Deadline
from verinet.verify.witness import Replayer

log = logging.getLogger(__name__)

PROOF_TOL = 1e-9  # a row counts as proven only when its sound lower bound exceeds this


@dataclass(frozen=True)
class ReluBabOptions:
    batch: int = 128              # domains bounded per round
    split: SplitOptions = SplitOptions()
    root_iterations: int = 20     # alpha optimisation steps for the root domains
    max_domains: int = 200_000    # queue cap (then: unknown)
    leaf_unstable: int = 0        # domains with at most this many unstable ReLUs go exact
    leaf_time: float = 10.0       # seconds per exact leaf solve
    backend: str = "highs"

    def __post_init__(self) -> None:
        if self.batch < 1 or self.max_domains < 1 or self.leaf_unstable < 0:
            raise InputError("relu-bab: batch and max_domains must be positive")


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
class _Stats:
    domains: int = 0
    rounds: int = 0
    max_depth: int = 0
    max_queue: int = 0
    leaves: int = 0
    unknown_leaves: int = 0
    infeasible: int = 0
    gave_up: bool = False

    def outcome(self, proven: bool, cex: Counterexample | None) -> ReluBabOutcome:
        return ReluBabOutcome(proven and not self.gave_up and self.unknown_leaves == 0, cex,
                              self.domains, self.rounds, self.max_depth, self.max_queue,
                              self.leaves, self.unknown_leaves, self.infeasible)


@dataclass
class _Pool:
    """Domains of one root: splits (N, U) int8, alpha/beta (N, U) float32 (any values are
    sound; float32 only saves memory), term (N,), depth (N,), parent bound (N,)."""

    split: Tensor
    alpha: Tensor
    beta: Tensor
    term: Tensor
    depth: Tensor
    lb: Tensor
    fields: tuple[str, ...] = field(default=("split", "alpha", "beta", "term", "depth", "lb"))

    def __len__(self) -> int:
        return int(self.term.shape[0])

    def take(self, idx: Tensor) -> _Pool:
        return _Pool(*(getattr(self, f)[idx] for f in self.fields))

    def push(self, other: _Pool) -> None:
        for f in self.fields:
            setattr(self, f, torch.cat([getattr(self, f), getattr(other, f)]))

    def pop(self, n: int, depth_first: bool) -> _Pool:
        key = -self.depth.to(DT) if depth_first else self.lb
        order = torch.argsort(key, stable=True)
        out, rest = order[:n], order[n:]
        batch = self.take(out)
        for f in self.fields:
            setattr(self, f, getattr(self, f)[rest])
        return batch


def relu_bab(
    chain: Chain,
    prop: Property,
    replayer: Replayer,
    deadline: Deadline,
    terms: list[int] | None = None,
    options: ReluBabOptions = ReluBabOptions(),
) -> ReluBabOutcome:
    """Prove the listed terms unreachable or find a confirmed counterexample."""
    if not chain.is_relu:
        raise InputError("relu-bab needs a ReLU chain")
    terms = list(range(len(prop.terms))) if terms is None else list(terms)
    stats = _Stats()
    for group in _box_groups(prop, terms):
        if deadline.expired():
            stats.gave_up = True
            break
        box = prop.terms[group[0]].box
        root = make_root(chain, box.lower, box.upper)
        cex = _search(chain, prop, root, group, replayer, deadline, options, stats)
        if cex is not None:
            return stats.outcome(False, cex)
        if stats.gave_up:
            break
    log.info("relu-bab: %d domains, %d rounds, depth %d, %d leaves (%d unknown), %d empty",
             stats.domains, stats.rounds, stats.max_depth, stats.leaves, stats.unknown_leaves,
             stats.infeasible)
    return stats.outcome(not stats.gave_up, None)


def _box_groups(prop: Property, terms: list[int]) -> list[list[int]]:
    """Terms grouped by identical input box (they share the root bounds)."""
    groups: dict[tuple[bytes, bytes], list[int]] = {}
    for t in terms:
        box = prop.terms[t].box
        groups.setdefault((box.lower.tobytes(), box.upper.tobytes()), []).append(t)
    return list(groups.values())


def _root_pool(root: SplitRoot, group: list[int]) -> _Pool:
    n, U = len(group), root.size
    alpha = torch.cat([(root.pre_hi[j][i] > -root.pre_lo[j][i]).to(torch.float32)
                       for j, i in enumerate(root.index)]) if U else torch.zeros(0)
    return _Pool(torch.zeros((n, U), dtype=torch.int8), alpha.expand(n, U).clone(),
                 torch.zeros((n, U), dtype=torch.float32), torch.tensor(group),
                 torch.zeros(n, dtype=torch.int64), torch.full((n,), -torch.inf, dtype=DT))


def _search(
    chain: Chain, prop: Property, root: SplitRoot, group: list[int], replayer: Replayer,
    deadline: Deadline, options: ReluBabOptions, stats: _Stats,
) -> Counterexample | None:
    """Branch and bound over the terms of one box; updates ``stats``."""
    _, _, A_np, b_np = stacked_terms(prop)
    A, b = torch.tensor(A_np, dtype=DT), torch.tensor(b_np, dtype=DT)
    pool = _root_pool(root, group)
    first = True
    while len(pool):
        if deadline.expired() or len(pool) > options.max_domains:
            stats.gave_up = True
            return None
        dom = pool.pop(options.batch, depth_first=len(pool) > options.max_domains // 2)
        split_opts = options.split
        if first:
            split_opts = SplitOptions(options.root_iterations, split_opts.lr_alpha,
                                      split_opts.lr_beta, split_opts.recompute,
                                      split_opts.branching)
            first = False
        res = bound_splits(root, dom.split, dom.alpha.to(DT), dom.beta.to(DT), A[dom.term],
                           b[dom.term], split_opts)
        stats.rounds += 1
        stats.domains += len(dom)
        stats.infeasible += int(torch.isinf(res.lower[:, 0]).sum())
        best = res.lower.max(dim=1).values
        alive = best <= PROOF_TOL
        cex = _check_candidates(chain, res.x[alive], dom.term[alive], A_np, b_np, replayer)
        if cex is not None:
            return cex
        n_unstable = res.unstable.sum(dim=1)
        for i in torch.nonzero(alive & (n_unstable <= options.leaf_unstable)).reshape(-1):
            if deadline.expired():
                stats.gave_up = True
                return None
            verdict, cex = _decide_leaf(chain, prop, int(dom.term[i]), res, int(i), replayer,
                                        deadline, options)
            stats.leaves += 1
            if cex is not None:
                return cex
            if verdict or n_unstable[i] == 0:
                stats.unknown_leaves += int(not verdict)
                alive[i] = False
        keep = torch.nonzero(alive).reshape(-1)
        if len(keep):
            pool.push(_children(dom.take(keep), res, keep, best[keep]))
            stats.max_depth = max(stats.max_depth, int(dom.depth[keep].max()) + 1)
        stats.max_queue = max(stats.max_queue, len(pool))
    return None


def _children(parent: _Pool, res: object, keep: Tensor, best: Tensor) -> _Pool:
    """Two children per domain, split on its highest-scoring unit."""
    score = res.score[keep]  # type: ignore[attr-defined]
    pos = score.argmax(dim=1)
    rows = torch.arange(len(keep))
    alpha = res.alpha[keep].to(torch.float32)  # type: ignore[attr-defined]
    beta = res.beta[keep].to(torch.float32)  # type: ignore[attr-defined]
    beta[rows, pos] = 0.0
    kids = []
    for phase in (1, -1):
        split = parent.split.clone()
        split[rows, pos] = phase
        kids.append(_Pool(split, alpha, beta, parent.term, parent.depth + 1, best))
    out = kids[0]
    out.push(kids[1])
    return out


def _check_candidates(
    chain: Chain, x: Tensor, terms: Tensor, A: np.ndarray, b: np.ndarray, replayer: Replayer
) -> Counterexample | None:
    if not len(terms):
        return None
    xs, t = x.numpy(), terms.numpy()
    y = chain.forward(xs)
    viol = (np.einsum("nkm,nm->nk", A[t], y) - b[t]).max(axis=1)
    if (viol <= 0).any():
        return replayer.confirm_batch(xs, t, viol)
    return None


# ----------------------------------------------------------------------------- exact leaves


def _leaf_bounds(chain: Chain, res: object, i: int) -> LayerBounds:
    """The domain's layer bounds (split units clamped), outputs by interval arithmetic."""
    lows = [p[i].numpy() for p in res.pre_lo]  # type: ignore[attr-defined]
    highs = [p[i].numpy() for p in res.pre_hi]  # type: ignore[attr-defined]
    out_lo, out_hi = affine_interval(chain.affines[-1], np.maximum(lows[-1], 0.0),
                                     np.maximum(highs[-1], 0.0))
    return LayerBounds(tuple(lows) + (out_lo,), tuple(highs) + (out_hi,), "relu-bab")


def _decide_leaf(
    chain: Chain, prop: Property, t: int, res: object, i: int, replayer: Replayer,
    deadline: Deadline, options: ReluBabOptions,
) -> tuple[bool, Counterexample | None]:
    """(proven, confirmed counterexample) for one domain by LP (MILP if units remain)."""
    term = prop.terms[t]
    bounds = _leaf_bounds(chain, res, i)
    limit = max(0.1, min(options.leaf_time, deadline.remaining()))
    out = milp_check_term(chain, term.box, term.unsafe, bounds, backend=options.backend,
                          time_limit=limit, tol=PROOF_TOL)
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
