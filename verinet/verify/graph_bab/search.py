"""Branch and bound over ReLU phases on the graph: CNNs, ResNets, pooling nets.

A domain is (term, splits) over the root's unstable ReLU/LeakyReLU units (:mod:`.root`).
Each round pops a batch of domains (lowest parent bound first, a child never ranked
below its parent's bound; deepest first once the queue passes half its cap), bounds them
in one batched beta-CROWN pass (:mod:`.bound`; children start from their parent's alpha
and beta) and

* drops a domain when some row of its term has a sound lower bound ``> PROOF_TOL``;
* replays the box vertex minimising each surviving domain's linear lower bound, and
  attacks the worst surviving domains from there, led into each domain by its cuts
  (:mod:`.attack`, on a share of the time; only the
  :class:`~verinet.verify.witness.Replayer` makes witnesses);
* decides a domain with no free unit exactly: by an LP when the network is affine on it,
  by the graph's MILP when MaxPool/Clip nodes remain (:mod:`.leaf`); otherwise (Sigmoid,
  Tanh) it is left *unknown* (never proven);
* splits the rest on the unit the branching score picks.

Completeness: children cover their parent and every leaf is decided exactly (on graphs
whose nonlinear nodes are piecewise linear: ReLU, LeakyReLU, MaxPool, Clip), so an
exhausted queue without unknown leaves proves every term unreachable.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

from verinet.bounds.graph import GraphModel, GraphOptions
from verinet.bounds.graph.propagate import round_out
from verinet.ir.torch import torch_network
from verinet.milp.graph_encode import milp_lacking
from verinet.spec.matrices import stacked_terms
from verinet.spec.property import Property
from verinet.types import Counterexample
from verinet.verify.deadline import Deadline
from verinet.verify.domains import (
    DomainPool,
    SearchStats,
    box_groups,
    concat,
    next_batch,
    take,
)
from verinet.verify.graph_bab.attack import DomainAttack
from verinet.verify.graph_bab.bound import Bounded, Params, bound_domains
from verinet.verify.graph_bab.leaf import decide_leaf, decide_leaf_milp
from verinet.verify.graph_bab.options import DEFAULT_OPTIONS, GraphBabOptions
from verinet.verify.graph_bab.root import GraphRoot, make_root
from verinet.verify.witness import Replayer

log = logging.getLogger(__name__)

PROOF_TOL = 1e-9
ROUND_SECONDS = 4.0


@dataclass(frozen=True)
class GraphBabOutcome:
    """``proven`` is True iff every listed term was shown unreachable."""

    proven: bool
    counterexample: Counterexample | None
    domains: int = 0
    rounds: int = 0
    max_depth: int = 0
    max_queue: int = 0
    leaves: int = 0
    unknown_leaves: int = 0
    split_units: int = 0


@dataclass(frozen=True)
class Batch:
    """Domains: ``lo``/``hi`` (N, U) float32 the units' intervals (rounded outward from
    the root's; cut points are float32 values, shared by both children); ``alpha`` (N, U,
    2), ``beta_lo``, ``beta_hi`` (N, U) float32; ``term``, ``depth`` (N,) int64; ``lb``
    (N,) float64, the parent's bound (the priority)."""

    lo: Tensor
    hi: Tensor
    alpha: Tensor
    beta_lo: Tensor
    beta_hi: Tensor
    term: Tensor
    depth: Tensor
    lb: Tensor = field(repr=False)


def graph_bab(gm: GraphModel, prop: Property, replayer: Replayer, deadline: Deadline,
              terms: list[int] | None = None,
              options: GraphBabOptions = DEFAULT_OPTIONS) -> GraphBabOutcome:
    """Prove the listed terms unreachable or find a confirmed counterexample."""
    gm.check()
    terms = list(range(len(prop.terms))) if terms is None else list(terms)
    stats = SearchStats()
    for group in box_groups(prop, terms):
        if deadline.expired():
            stats.gave_up = True
            break
        box = prop.terms[group[0]].box
        root = make_root(gm, torch.tensor(box.lower), torch.tensor(box.upper),
                         GraphOptions(tighten=options.root_tighten),
                         stop=lambda: deadline.remaining() < 0.5 * deadline.seconds)
        stats.split_units = max(stats.split_units, root.size)
        cex = _search(root, prop, group, replayer, deadline, options, stats)
        if cex is not None:
            return stats.outcome(GraphBabOutcome, False, cex)
        if stats.gave_up:
            break
    log.info("graph-bab: %d domains, %d rounds, depth %d, %d leaves (%d unknown), "
             "%d split units", stats.domains, stats.rounds, stats.max_depth, stats.leaves,
             stats.unknown_leaves, stats.split_units)
    return stats.outcome(GraphBabOutcome, True, None)


def root_batch(root: GraphRoot, group: list[int]) -> Batch:
    n, U = len(group), root.size
    lo, hi = root.unit_bounds()
    alpha = root.unit_params().to(torch.float32)
    zeros = torch.zeros((n, U), dtype=torch.float32)
    return Batch(round_out(lo, torch.float32, -1).expand(n, U).clone(),
                 round_out(hi, torch.float32, 1).expand(n, U).clone(),
                 alpha.expand(n, U, 2).clone(), zeros, zeros.clone(), torch.tensor(group),
                 torch.zeros(n, dtype=torch.int64),
                 torch.full((n,), -torch.inf, dtype=torch.float64))


def _search(root: GraphRoot, prop: Property, group: list[int], replayer: Replayer,
            deadline: Deadline, options: GraphBabOptions, stats: SearchStats
            ) -> Counterexample | None:
    _, _, A_np, b_np = stacked_terms(prop, combine=True)
    A, b = torch.tensor(A_np), torch.tensor(b_np)
    pool: DomainPool[Batch] = DomainPool(root_batch(root, group))
    cap = options.cap(root.size)
    split_opts = replace(options.split, iterations=options.root_iterations)
    batch_cap = options.batch_cap(root.gm, int(A.shape[1]))
    batch = batch_cap
    attack = DomainAttack(root, options.attack)
    pace: tuple[float, float] | None = None  # last round: seconds per domain, share proven
    while len(pool):
        if deadline.expired() or len(pool) > cap or _hopeless(pace, len(pool), batch,
                                                               deadline.remaining()):
            stats.gave_up = True
            return None
        t0 = time.perf_counter()
        dom = pool.pop(batch, depth_first=len(pool) > cap // 2)
        res = bound_domains(root, dom.lo, dom.hi, Params(dom.alpha, dom.beta_lo, dom.beta_hi),
                            A[dom.term], b[dom.term], split_opts, deadline.expired)
        split_opts = options.split
        stats.rounds += 1
        stats.domains += int(dom.term.shape[0])
        best = res.lower.max(dim=1).values
        alive = ~(best > PROOF_TOL)  # a NaN bound proves nothing
        # The parent's bound holds on its part too: a child whose own bound came out
        # worse (a new cut's beta starts at 0) keeps its parent's as its priority.
        best = torch.maximum(best.nan_to_num(nan=-torch.inf), dom.lb)
        cex = check_candidates(root, res.x[alive], dom.term[alive], A, b, replayer)
        if cex is None and attack.due():
            cex = _attack(attack, dom, res.x, best, alive, A, b, replayer)
        if cex is None:
            cex = _leaves(root, prop, dom, res, alive, A, b, replayer, deadline, options,
                          stats)
        if cex is not None or stats.gave_up:
            return cex
        keep = torch.nonzero(alive).reshape(-1)
        if len(keep):
            pool.push(children(take(dom, keep), take(res, keep), best[keep]))
            stats.max_depth = max(stats.max_depth, int(dom.depth[keep].max()) + 1)
        stats.max_queue = max(stats.max_queue, len(pool))
        seconds = time.perf_counter() - t0
        if stats.rounds > 1:  # the root round's long ascent says nothing about the pace
            n = int(dom.term.shape[0])
            pace = (seconds / n, 1.0 - len(keep) / n)
        batch = next_batch(batch, seconds, batch_cap, ROUND_SECONDS)
        log.debug("graph-bab round %d: %d bounded, %d split, queue %d, worst %.4g, %.1f s",
                  stats.rounds, int(dom.term.shape[0]), len(keep), len(pool),
                  float(best.min()), deadline.elapsed())
    return None


def _hopeless(pace: tuple[float, float] | None, queue: int, batch: int,
              remaining: float) -> bool:
    """Whether the next round would end past the deadline without a chance of ending the
    search: it cannot empty the queue (more domains than one batch), or the last round
    split most of its domains.  Stopping then returns the time to the caller (a radius
    search's next probe) instead of overrunning: on CIFAR ConvSmall image 22, a 4.4 s
    probe took 4.96 s, its last round (152 domains) 0.62 s."""
    if pace is None:
        return False
    per_domain, proven = pace
    if per_domain * min(queue, batch) <= remaining:
        return False
    return queue > batch or proven < 0.5


def _attack(attack: DomainAttack, dom: Batch, x0: Tensor, best: Tensor, alive: Tensor,
            A: Tensor, b: Tensor, replayer: Replayer) -> Counterexample | None:
    """Attack the alive domains with the lowest bounds from their vertex candidates."""
    idx = torch.nonzero(alive).reshape(-1)
    if not len(idx):
        return None
    idx = idx[torch.argsort(best[idx])[:attack.options.domains]]
    t = dom.term[idx]
    x = attack.points(dom.lo[idx], dom.hi[idx], x0[idx], A[t], b[t])
    return check_candidates(attack.root, x, t, A, b, replayer)  # float64 margins decide


def check_candidates(root: GraphRoot, x: Tensor, terms: Tensor, A: Tensor, b: Tensor,
                     replayer: Replayer) -> Counterexample | None:
    """Replay the candidates whose outputs violate their term."""
    if not len(terms):
        return None
    with torch.no_grad():
        y = torch_network(root.gm.network)(x)
    viol = ((A[terms] @ y.unsqueeze(-1)).squeeze(-1) - b[terms]).max(dim=1).values
    if (viol <= 0).any():
        return replayer.confirm_batch(x.numpy(), terms.numpy(), viol.numpy())
    return None


def _leaves(root: GraphRoot, prop: Property, dom: Batch, res: Bounded, alive: Tensor,
            A: Tensor, b: Tensor, replayer: Replayer, deadline: Deadline,
            options: GraphBabOptions, stats: SearchStats) -> Counterexample | None:
    """Decide the alive domains without a free unit; clears their ``alive``.  Affine
    leaves go to the LP, leaves with MaxPool/Clip nodes left to the graph's MILP."""
    milp_leaves = not root.affine_leaves and not milp_lacking(root.gm)
    for i in torch.nonzero(alive & (res.branch < 0)).reshape(-1):
        if deadline.expired():
            stats.gave_up = True
            return None
        alive[i] = False
        stats.leaves += 1
        if not (root.affine_leaves or milp_leaves):
            stats.unknown_leaves += 1
            continue
        t = int(dom.term[i])
        limit = min(options.leaf_time, deadline.remaining())
        decide = decide_leaf if root.affine_leaves else decide_leaf_milp
        proven, x = decide(root, dom.lo[i], dom.hi[i], A[t].numpy(), b[t].numpy(), limit,
                           options.backend)
        if proven:
            continue
        if x is not None:
            cex = replayer.confirm(x, t)
            if cex is not None:
                return cex
            log.warning("graph-bab: LP candidate for term %d failed replay", t)
        stats.unknown_leaves += 1
    return None


def children(parent: Batch, res: Bounded, best: Tensor) -> Batch:
    """Two children per domain, cut at the unit and point the bounding step picked: the
    lower half ``[l, m]`` (its upper end is new) and the upper half ``[m, u]``."""
    pos, m = res.branch, res.point.to(torch.float32)
    rows = torch.arange(len(pos))
    alpha = res.alpha.to(torch.float32)
    lower_hi, upper_lo = parent.hi.clone(), parent.lo.clone()
    lower_hi[rows, pos] = m
    upper_lo[rows, pos] = m
    b_hi, b_lo = res.beta_hi.to(torch.float32).clone(), res.beta_lo.to(torch.float32).clone()
    b_hi[rows, pos] = 0.0
    b_lo[rows, pos] = 0.0
    low = Batch(parent.lo, lower_hi, alpha, res.beta_lo.to(torch.float32), b_hi, parent.term,
                parent.depth + 1, best.to(torch.float64))
    high = Batch(upper_lo, parent.hi, alpha, b_lo, res.beta_hi.to(torch.float32), parent.term,
                 parent.depth + 1, best.to(torch.float64))
    return concat([low, high])
