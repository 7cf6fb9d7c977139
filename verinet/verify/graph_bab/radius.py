"""The robustness radius of one sample by branch and bound on the graph.

A bisection on eps with independent proofs throws every failed probe away.  This search
keeps one branch-and-bound tree for the sample and reads a certified radius off it at
any moment:

* the tree is grown on the ball of radius ``top`` (just below the closest known
  adversarial example); its domains are (term, splits) as in :mod:`.search`, and each
  bounding gives a sound linear lower bound of the term's margin on the domain;
* that linear bound holds on every smaller ball too, so the largest eps at which it is
  positive over the ball of radius eps (found by bisection on the bound alone, with the
  engine's own :func:`~verinet.bounds.graph.propagate.concretize` and slack) is a
  certified *reach* of the domain: no point of the domain within eps of the sample is
  adversarial.  A child inherits its parent's reach (its region is inside the parent's)
  and keeps the larger of that and its own;
* the certified radius is the smallest reach over the open domains (the sample's own
  classification holds at eps 0); domains pop smallest reach first, so every round works
  on what limits the radius;
* a confirmed counterexample (a bound's minimising vertex or an exact leaf LP) is handed
  to the caller with the tree intact; the caller moves ``top`` below it and the same tree
  goes on on the smaller ball (its intermediate bounds, computed for the larger ball,
  are sound for the smaller one; only the input box shrinks);
* a domain that can be neither split nor decided exactly (an undecided leaf, a smooth
  activation's leaf) caps the certified radius at its reach and leaves the tree.

Proven domains stay proven on every smaller ball, so no work is lost when ``top`` moves.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor

from verinet.bounds.graph import GraphModel, GraphOptions
from verinet.bounds.graph.propagate import GraphState, concretize, round_out
from verinet.ir.graph import Network
from verinet.spec.matrices import stacked_terms
from verinet.spec.property import Property
from verinet.types import Box, Counterexample, linf_ball_bounds
from verinet.verify.deadline import Deadline
from verinet.verify.domains import DomainPool, SearchStats, next_batch, take
from verinet.verify.graph_bab.bound import Bounded, Params, bound_domains
from verinet.verify.graph_bab.leaf import decide_leaf, leaf_reach
from verinet.verify.graph_bab.options import DEFAULT_OPTIONS, GraphBabOptions
from verinet.verify.graph_bab.root import GraphRoot, make_root
from verinet.verify.graph_bab.search import (
    PROOF_TOL,
    ROUND_SECONDS,
    Batch,
    check_candidates,
    children,
    root_batch,
)
from verinet.verify.witness import OnnxEval, Replayer, closest_scale

log = logging.getLogger(__name__)

REACH_STEPS = 30  # bisection steps on a domain's reach (relative resolution 1e-9)


@dataclass(frozen=True)
class RadiusStep:
    """What one call established: ``lower`` a certified radius (no adversarial example
    within L-inf distance ``lower`` of the sample, inside the domain); ``proven``: the
    whole ball of radius ``top`` is robust (then ``lower == top``); ``counterexample``: a
    confirmed adversarial example inside that ball."""

    top: float
    lower: float
    proven: bool
    counterexample: Counterexample | None
    domains: int
    rounds: int
    open_domains: int


def shrink_root(root: GraphRoot, lo: Tensor, hi: Tensor) -> GraphRoot:
    """``root`` on the smaller input box ``lo``/``hi`` (n,) (float64, inside the root's
    box): the intermediate bounds and relaxations of the larger box stay (they are sound
    for every point of it), the input box is replaced."""
    name = root.gm.input_name
    r_lo, r_hi = root.state.lo[name].reshape(-1), root.state.hi[name].reshape(-1)
    if bool((lo < r_lo).any() or (hi > r_hi).any()):
        raise ValueError("shrink_root: the new box is not inside the root's")

    def sub(st: GraphState, dtype: torch.dtype) -> GraphState:
        new_lo, new_hi = dict(st.lo), dict(st.hi)
        shape = st.lo[name].shape
        new_lo[name] = round_out(lo, dtype, -1).reshape(shape)
        new_hi[name] = round_out(hi, dtype, 1).reshape(shape)
        return replace(st, lo=new_lo, hi=new_hi)

    return replace(root, state=sub(root.state, torch.float64),
                   low=sub(root.low, torch.float32))


def reach(root: GraphRoot, res: Bounded, x0: Tensor, domain: tuple[Tensor, Tensor],
          top: float, steps: int = REACH_STEPS) -> Tensor:
    """Per domain (N,), the largest eps found in ``[0, top]`` at which the sound bound
    ``res`` is positive (some row ``> PROOF_TOL``) over the ball of radius eps around
    ``x0`` (clipped to ``domain``); 0 where none was found."""
    N = res.coef.shape[0]
    low = torch.zeros(N, dtype=torch.float64)
    high = torch.full((N,), float(top), dtype=torch.float64)
    done = res.lower.max(dim=1).values > PROOF_TOL
    low[done] = top
    act = torch.nonzero(~done).reshape(-1)
    coef, const, mag = res.coef[act], res.const[act], res.mag[act]
    d_lo, d_hi = domain
    for _ in range(steps):
        if not len(act):
            break
        mid = (low[act] + high[act]) / 2.0
        b_lo = torch.clamp(x0 - mid[:, None], d_lo, d_hi)
        b_hi = torch.clamp(x0 + mid[:, None], d_lo, d_hi)
        val = concretize(root.state, coef, const, mag, (b_lo, b_hi)).max(dim=1).values
        ok = val > PROOF_TOL  # NaN proves nothing
        low[act] = torch.where(ok, mid, low[act])
        high[act] = torch.where(ok, high[act], mid)
    return low


class RadiusSearch:
    """The search of one sample (``x0`` flat, ``label``, input ``domain`` (lo, hi) flat
    arrays), kept across calls of :meth:`run`.  Not thread-safe."""

    def __init__(self, gm: GraphModel, network: Network, onnx_eval: OnnxEval | None,
                 x0: np.ndarray, label: int, domain: tuple[np.ndarray, np.ndarray],
                 options: GraphBabOptions = DEFAULT_OPTIONS) -> None:
        gm.check()
        self.gm, self.network, self.onnx_eval = gm, network, onnx_eval
        self.x0 = np.asarray(x0, dtype=np.float64).reshape(-1)
        self.label = int(label)
        self.domain = (np.asarray(domain[0], dtype=np.float64).reshape(-1),
                       np.asarray(domain[1], dtype=np.float64).reshape(-1))
        self.options = options
        self.top = math.nan
        self.root: GraphRoot | None = None
        self.pool: DomainPool[Batch] | None = None
        self.cap = math.inf  # reach of the domains given up on
        self.fresh = False   # the next round bounds a new tree's root domains
        self.stats = SearchStats()

    # ------------------------------------------------------------------ bookkeeping

    def ball(self, eps: float) -> Box:
        return Box(*linf_ball_bounds(self.x0, eps, *self.domain))

    def lower(self) -> float:
        """The certified radius the tree shows now."""
        if self.pool is None:
            return 0.0
        value = min(self.top, self.cap)
        if len(self.pool):
            value = min(value, float(self.pool.store.lb[self.pool.live].min()))
        return max(0.0, value)

    def _step(self, cex: Counterexample | None) -> RadiusStep:
        assert self.pool is not None
        lower = self.lower()
        proven = not len(self.pool) and self.cap >= self.top
        return RadiusStep(self.top, lower, proven, cex, self.stats.domains, self.stats.rounds,
                          len(self.pool))

    def _start(self, top: float, deadline: Deadline) -> None:
        box = self.ball(top)
        self.root = make_root(self.gm, torch.tensor(box.lower), torch.tensor(box.upper),
                              GraphOptions(tighten=self.options.root_tighten),
                              stop=lambda: deadline.remaining() < 0.5 * deadline.seconds)
        terms = list(range(self.network.n_outputs - 1))
        first = root_batch(self.root, terms)
        self.pool = DomainPool(replace(first, lb=torch.zeros_like(first.lb)))
        self.cap, self.top, self.fresh = math.inf, top, True
        self.stats.split_units = self.root.size

    def _shrink(self, top: float) -> None:
        assert self.root is not None and self.pool is not None
        box = self.ball(top)
        self.root = shrink_root(self.root, torch.tensor(box.lower), torch.tensor(box.upper))
        self.pool.store = replace(self.pool.store, lb=self.pool.store.lb.clamp(max=top))
        self.top, self.cap = top, min(self.cap, top)

    # ------------------------------------------------------------------ search

    def run(self, top: float, deadline: Deadline) -> RadiusStep:
        """Grow the tree on the ball of radius ``top`` until it is proven, a confirmed
        counterexample turns up, the queue is full or ``deadline`` expires.  A ``top``
        above the tree's starts a new tree; below it, the tree goes on on the smaller
        ball."""
        if not top > 0:
            raise ValueError(f"radius search: top must be positive, got {top}")
        if self.pool is None or top > self.top:
            self._start(top, deadline)
        elif top < self.top:
            self._shrink(top)
        assert self.root is not None and self.pool is not None
        root, pool, opts = self.root, self.pool, self.options
        prop = Property.robustness(self.ball(top), self.label, self.network.n_outputs)
        replayer = Replayer(self.network, prop, self.onnx_eval)
        _, _, A_np, b_np = stacked_terms(prop, combine=True)
        A, b = torch.tensor(A_np), torch.tensor(b_np)
        x0 = torch.tensor(self.x0)
        dom_box = (torch.tensor(self.domain[0]), torch.tensor(self.domain[1]))
        batch_cap = opts.batch_cap(root.gm, int(A.shape[1]))
        batch, cap = batch_cap, opts.cap(root.size)
        while len(pool) and not deadline.expired() and len(pool) <= cap:
            t0 = time.perf_counter()
            split = opts.split
            if self.fresh:  # the root domains get the long ascent
                split, self.fresh = replace(split, iterations=opts.root_iterations), False
            dom = pool.pop(batch, depth_first=len(pool) > cap // 2)
            res = bound_domains(root, dom.lo, dom.hi, Params(dom.alpha, dom.beta_lo,
                                                              dom.beta_hi),
                                A[dom.term], b[dom.term], split, deadline.expired)
            self.stats.rounds += 1
            self.stats.domains += int(dom.term.shape[0])
            got = torch.maximum(reach(root, res, x0, dom_box, top), dom.lb.clamp(max=top))
            # proven on the ball: a positive bound, or a reach that covers it
            alive = ~(res.lower.max(dim=1).values > PROOF_TOL) & (got < top)
            cex = check_candidates(root, res.x[alive], dom.term[alive], A, b, replayer)
            leaf = alive & (res.branch < 0)
            alive &= ~leaf
            keep_leaf = leaf.clone()  # all back when a counterexample ends this round
            if cex is None:
                cex = self._leaves(root, dom, leaf, got, keep_leaf, A, b, replayer, deadline)
            if keep_leaf.any():  # undecided leaves: back as they are
                idx = torch.nonzero(keep_leaf).reshape(-1)
                pool.push(replace(take(dom, idx), lb=got[idx]))
            keep = torch.nonzero(alive).reshape(-1)
            if len(keep):
                pool.push(children(take(dom, keep), take(res, keep), got[keep]))
                self.stats.max_depth = max(self.stats.max_depth, int(dom.depth[keep].max()) + 1)
            self.stats.max_queue = max(self.stats.max_queue, len(pool))
            if cex is not None:
                return self._step(self._closer(cex, replayer))
            batch = next_batch(batch, time.perf_counter() - t0, batch_cap, ROUND_SECONDS)
            log.debug("radius-bab round %d: top %.6g, %d bounded, queue %d, lower %.6g",
                      self.stats.rounds, top, int(dom.term.shape[0]), len(pool),
                      self.lower())
        return self._step(None)

    def _closer(self, cex: Counterexample, replayer: Replayer) -> Counterexample:
        """The counterexample moved towards the sample along their segment (the smallest
        scale still adversarial on the IR: :func:`closest_scale`), if its replay confirms
        it."""
        hi = closest_scale(self.network, self.x0, cex.x, self.label)
        if hi < 1.0:
            d = np.asarray(cex.x, dtype=np.float64).reshape(-1) - self.x0
            closer = replayer.confirm(self.x0 + hi * d)
            if closer is not None:
                return closer
        return cex

    def _leaves(self, root: GraphRoot, dom: Batch, leaf: Tensor, got: Tensor,
                keep_leaf: Tensor, A: Tensor, b: Tensor, replayer: Replayer,
                deadline: Deadline) -> Counterexample | None:
        """Decide the domains ``leaf`` (no free unit left).  Proven ones leave; one with a
        confirmed counterexample stays (``keep_leaf``: on a smaller ball it may be
        proven), and so do those not reached before the deadline or a counterexample;
        the rest (undecided, or not affine) cap the radius at their reach and leave."""
        cex = None
        for i in torch.nonzero(leaf).reshape(-1):
            if cex is not None or (root.affine_leaves and deadline.expired()):
                continue  # stays in keep_leaf
            keep_leaf[i] = False
            self.stats.leaves += 1
            if not root.affine_leaves:
                self.cap = min(self.cap, float(got[i]))
                continue
            t = int(dom.term[i])
            limit = min(self.options.leaf_time, deadline.remaining())
            proven, x = decide_leaf(root, dom.lo[i], dom.hi[i], A[t].numpy(), b[t].numpy(),
                                    limit, self.options.backend)
            if proven:
                continue
            if x is not None:
                cex = replayer.confirm(x, t)
                if cex is not None:
                    # the exact distance of the leaf's violating points bounds its reach
                    r = leaf_reach(root, dom.lo[i], dom.hi[i], A[t].numpy(), b[t].numpy(),
                                   self.x0, limit, self.options.backend)
                    got[i] = max(float(got[i]), r - max(1e-12, 1e-9 * r))
                    keep_leaf[i] = True
                    continue
                log.warning("radius-bab: LP candidate for term %d failed replay", t)
            self.stats.unknown_leaves += 1
            self.cap = min(self.cap, float(got[i]))
        return cex
