"""Exact star-set verification of low-dimensional ReLU chains (nnenum style).

A *star* is a convex input polytope ``P = {x in box : a_r . x <= beta_r}`` (the term's box
plus the split rows that fixed ReLU phases) together with the map ``z = M x + c`` from the
input to the current layer, which is exact on ``P``.  A star walks through the ReLU
layers neuron by neuron:

* a neuron whose pre-activation is ``>= 0`` (``<= 0``) on ``P`` is active (its row is kept,
  resp. zeroed); cheap sound bounds first (the affine row over the star's box, intersected
  with the bounds an earlier over-approximation gave), then certified bounds over ``P``:
  from ``P``'s vertices (:mod:`verinet.verify.star.vertices`: Qhull gives them, weak
  duality on each minimising vertex's active set certifies the bound), or from LPs where
  no vertex set is known (a flat polytope, Qhull failing, fewer than 2 free inputs);
* a neuron that still crosses 0 splits the star into ``P & {z_j <= 0}`` (row zeroed) and
  ``P & {z_j >= 0}``.  The two children cover ``P``.  One child is pushed on a
  depth-first stack, the search continues with the other (the one holding the point the
  over-approximation found most violating: counterexamples come early).

Before every split the rest of the network is over-approximated from the star (CROWN
back-substitution onto the input variables: the processed neurons of the current layer
exactly, the others and all later layers by their linear relaxations, each later layer's
bounds minimised over ``P`` by its vertex certificate where known, else over its box;
measured on ACAS Xu 4_7 property 1, one worker: 1,003 stars and 3.2 s against 4,337 stars
and 12.3 s with box bounds and LPs), which gives for
every row ``i`` of a term a linear function with ``A_i f(x) - b_i >= L_i x + l_i`` on
``P``.  A term is unreachable on the star when ``min_{x in P} max_i (L_i x + l_i) > 0``
(certified by an LP's dual, see :mod:`verinet.verify.star.lp`); a star with no reachable
term left is dropped.  At the output the map is exact, so the same LP with ``L = A M``
decides the term on the star: a certified positive minimum proves it, otherwise the LP's
minimiser is a candidate that must pass :class:`~verinet.verify.witness.Replayer`
(unconfirmed candidates leave the result not proven, never proven).

What is proven: ``proven`` means every star of every term's box was dropped on a certified
bound, so no input of any listed term reaches its unsafe set.  Tolerances: all arithmetic
is float64; every bound (CROWN, interval, LP certificate) is lowered by ``1e-10 * M +
1e-12`` (``M`` the magnitude of the summed terms; :data:`verinet.bounds.fp.FLOAT64`),
and a bound proves a row only when it is ``> 0`` after that slack.  Neuron phases are
fixed only on certified bounds as well, so the affine maps stay exact up to float64
rounding of the products themselves.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from verinet.bounds.fp import FLOAT64
from verinet.ir.chain import Chain
from verinet.spec.property import Property
from verinet.types import Counterexample
from verinet.verify.deadline import Deadline
from verinet.verify.star.box import box_corners, interval, tighten_box
from verinet.verify.star.lp import Cons, PolyLp
from verinet.verify.star.relax import Relaxer
from verinet.verify.star.state import Bounds, Star, StarOptions, StarOutcome, Stats
from verinet.verify.star.vertices import MAX_DIM, PolyBounds, inner_point, vertex_set
from verinet.verify.witness import Replayer

log = logging.getLogger(__name__)

PROGRESS_EVERY = 5.0  # seconds between progress log lines
MAX_POINTS = 64  # known points kept per star


class Finisher(Protocol):
    """What finishes a search on other processes from its open stars: (counterexample,
    finished), with the meaning of :meth:`Search.run`
    (:class:`~verinet.verify.star.pool.StarPool`)."""

    def run(self, search: Search, stack: list[Star]) -> tuple[Counterexample | None, bool]:
        ...


@dataclass
class _Cur:
    """The star being advanced (mutable, local to ``Search.advance``)."""

    k: int
    done: np.ndarray
    M: np.ndarray
    c: np.ndarray
    cons: Cons | None
    lo: np.ndarray
    hi: np.ndarray
    prior: tuple[Bounds | None, ...]
    terms: tuple[int, ...]
    pts: np.ndarray
    ext: np.ndarray
    inner: np.ndarray | None
    vs: PolyBounds | None = None  # bounds from the polytope's vertices (None: LPs)


def prepare_searches(chain: Chain, prop: Property, replayer: Replayer, deadline: Deadline,
                     terms: list[int] | None, options: StarOptions) -> list[Search]:
    """One search per distinct input box of the listed terms (sharing one counter)."""
    if not chain.is_relu:
        raise ValueError("star-set verification needs a ReLU chain")
    terms = list(range(len(prop.terms))) if terms is None else list(terms)
    groups: dict[tuple[bytes, bytes], list[int]] = {}
    for t in terms:
        box = prop.terms[t].box
        groups.setdefault((box.lower.tobytes(), box.upper.tobytes()), []).append(t)
    stats = Stats(stars=0)
    return [Search(chain, prop, replayer, deadline, group, options, stats, index=i)
            for i, group in enumerate(groups.values())]


def drive(searches: list[Search], get_pool: Callable[[], Finisher] | None) -> StarOutcome:
    """Run the searches one after the other (``get_pool``: None for serial only, else
    a callable giving the :class:`~verinet.verify.star.pool.StarPool` to finish on)."""
    stats = searches[0].stats if searches else Stats(stars=0)
    lps = 0
    proven = True
    for search in searches:
        cex, done = search.run(get_pool)
        lps += search.lp.solves + search.worker_lps
        if cex is not None:
            return stats.outcome(False, cex, lps)
        if not done:
            proven = False
            break
    return stats.outcome(proven and stats.unresolved == 0, None, lps)


class Search:
    """Depth-first star enumeration for the terms of one input box."""

    def __init__(self, chain: Chain, prop: Property, replayer: Replayer, deadline: Deadline,
                 terms: list[int], options: StarOptions, stats: Stats, index: int = 0) -> None:
        self.index = index  # position among the searches sharing a worker pool
        self.chain, self.prop, self.replayer = chain, prop, replayer
        self.deadline, self.options, self.stats = deadline, options, stats
        box = prop.terms[terms[0]].box
        self.box_lo, self.box_hi = box.lower.copy(), box.upper.copy()
        self.affines = [(a.weight, a.bias) for a in chain.affines]
        self.n_relu = len(self.affines) - 1
        self.terms = tuple(terms)
        self.spec: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for t in terms:
            hs = prop.terms[t].unsafe
            A, b = np.asarray(hs.A, dtype=np.float64), np.asarray(hs.b, dtype=np.float64)
            if A.shape[0] == 0:  # no rows: every output is unsafe (0 <= 0)
                A, b = np.zeros((1, prop.n_outputs)), np.zeros(1)
            self.spec[t] = (A, b)
        self.lp = PolyLp(self.box_lo, self.box_hi)
        self.relaxer = Relaxer(self.affines)
        self.next_report = deadline.elapsed() + PROGRESS_EVERY
        self.worker_lps = 0  # LP solves made in worker processes

    # ------------------------------------------------------------------ driver

    def run(self, get_pool: Callable[[], Finisher] | None = None
            ) -> tuple[Counterexample | None, bool]:
        """(counterexample, finished): finished means every star was processed.  After
        ``serial_s`` seconds the rest of the stack goes to the worker processes of
        ``get_pool()`` (:mod:`verinet.verify.star.pool`), if given."""
        W0, b0 = self.affines[0]
        root = Star(0, np.zeros(W0.shape[0], dtype=bool), W0.copy(), b0.copy(), None,
                    self.box_lo, self.box_hi, (), self.terms, np.zeros((0, self.box_lo.size)),
                    np.full((2 * self.box_lo.size, self.box_lo.size), np.nan),
                    (self.box_lo + self.box_hi) / 2.0 if self._use_vertices() else None)
        self.stats.stars += 1
        stack = [root]
        go_parallel = self.deadline.elapsed() + self.options.serial_s
        while stack:
            if self.deadline.expired() or self.stats.stars > self.options.max_stars:
                return None, False
            self.report(len(stack))
            if get_pool is not None and self.deadline.elapsed() >= go_parallel:
                return get_pool().run(self, stack)
            cex = self.advance(stack.pop(), stack)
            if cex is not None:
                return cex, True
        return None, not self.deadline.expired()

    def _use_vertices(self) -> bool:
        """Vertex sets for this box: asked for, and few enough free inputs."""
        free = int((self.box_hi > self.box_lo).sum())
        return self.options.vertices and 2 <= free <= MAX_DIM

    def report(self, stack_size: int) -> None:
        """A progress line every ``PROGRESS_EVERY`` seconds."""
        if self.deadline.elapsed() >= self.next_report:
            s = self.stats
            log.info("star: %d stars, %d leaves, %d dropped, %d LPs, stack %d, %.1f s",
                     s.stars, s.leaves, s.dropped, self.lp.solves + self.worker_lps,
                     stack_size, self.deadline.elapsed())
            self.next_report += PROGRESS_EVERY

    def advance(self, star: Star, stack: list[Star]) -> Counterexample | None:
        """Process one star to the output, pushing the siblings of every split."""
        cur = _Cur(star.layer, star.done.copy(), star.M.copy(), star.c.copy(), star.cons,
                   star.lo, star.hi, star.prior, star.terms, star.pts, star.ext, star.inner)
        self.lp.load(cur.cons)
        if self.options.contract and cur.cons is not None:
            self._contract(cur)
        while cur.k < self.n_relu:
            lb, ub = interval(cur.M, cur.c, cur.lo, cur.hi)
            if cur.prior and cur.prior[0] is not None:
                lb = np.maximum(lb, cur.prior[0][0])
                ub = np.minimum(ub, cur.prior[0][1])
            while True:
                if self.deadline.expired():
                    return None
                self._apply_stable(cur, lb, ub)
                if cur.done.all():
                    break
                if self.options.tighten_layer and cur.cons is not None:
                    self._tighten_layer(cur, lb, ub)
                    self._apply_stable(cur, lb, ub)
                    if cur.done.all():
                        break
                got = self._before_split(cur, lb, ub)
                if got is None or isinstance(got, Counterexample):
                    return got
                hint, order = got
                for i in order:
                    if not self._settle(cur, int(i), lb, ub):
                        self._split(cur, int(i), lb, ub, hint, stack)
                        break
                    self._apply_stable(cur, lb, ub)
            W, b = self.affines[cur.k + 1]
            cur.M, cur.c = W @ cur.M, W @ cur.c + b
            cur.k = cur.k + 1
            cur.done = np.zeros(cur.M.shape[0], dtype=bool)
            cur.prior = cur.prior[1:]
        return self._output(cur.M, cur.c, cur.terms, cur.lo, cur.hi, cur.vs)

    @staticmethod
    def _apply_stable(cur: _Cur, lb: np.ndarray, ub: np.ndarray) -> None:
        """Mark neurons with sign-definite bounds done (inactive rows zeroed)."""
        off = ~cur.done & (ub <= 0.0)
        if off.any():
            cur.M[off], cur.c[off] = 0.0, 0.0
        cur.done |= off | (lb >= 0.0)

    def _contract(self, cur: _Cur) -> None:
        """Shrink the star's box to the certified bounding box of its polytope: from its
        vertices when Qhull gives them (:mod:`verinet.verify.star.vertices`), else by
        LPs.  An extreme point of the parent that satisfies the newest split row stays
        extreme, so only the cut-off ones are solved again (skipping is always sound:
        the parent's bound still holds)."""
        assert cur.cons is not None
        d = cur.lo.size
        cur.vs = None
        vs = None
        if cur.inner is not None:
            vs = vertex_set(self.lp.G, self.lp.h, cur.lo, cur.hi, cur.inner)
        if vs is not None:
            eye = np.eye(d)
            b = PolyBounds(vs, self.lp.G, self.lp.h, cur.lo, cur.hi).lower(
                np.vstack([eye, -eye]))
            lo, hi = np.maximum(cur.lo, b[:d]), np.minimum(cur.hi, -b[d:])
            ok = lo <= hi
            cur.lo, cur.hi = np.where(ok, lo, cur.lo), np.where(ok, hi, cur.hi)
            cur.vs = PolyBounds(vs, self.lp.G, self.lp.h, cur.lo, cur.hi)
            return
        lo, hi, ext = cur.lo.copy(), cur.hi.copy(), cur.ext.copy()
        kept = ext @ cur.cons.a <= cur.cons.beta  # nan rows compare False
        eye = np.eye(d)
        for r in np.flatnonzero(~kept):
            i, sign = r // 2, (1.0 if r % 2 == 0 else -1.0)
            got = self.lp.minimize(sign * eye[i])
            ext[r] = np.nan if got.x is None else got.x[:d]
            if sign > 0 and got.bound > lo[i]:
                lo[i] = got.bound
            elif sign < 0 and -got.bound < hi[i]:
                hi[i] = -got.bound
        ok = lo <= hi  # an empty certified range would mean an empty star: keep it safe
        cur.lo, cur.hi = np.where(ok, lo, cur.lo), np.where(ok, hi, cur.hi)
        cur.ext = ext
        fresh = ext[~kept]
        fresh = fresh[~np.isnan(fresh).any(axis=1)]
        if fresh.size:
            cur.pts = np.vstack([cur.pts, fresh])[-MAX_POINTS:]

    def _settle(self, cur: _Cur, j: int, lb: np.ndarray, ub: np.ndarray) -> bool:
        """Try to fix the phase of crossing neuron ``j`` (True: lb/ub now decide it).
        Known points of the star on both sides mean it really crosses (no LP needed)."""
        if cur.cons is None:
            return False  # on the bare box the interval bounds are exact
        row, off = cur.M[j], float(cur.c[j])
        if cur.vs is not None:
            b = cur.vs.lower(np.vstack([row, -row]))
            lb[j], ub[j] = max(lb[j], b[0] + off), min(ub[j], -b[1] + off)
            if lb[j] >= 0.0 or ub[j] <= 0.0:
                return True
            at = cur.vs.pts @ row + off
            if at.min() < 0.0 < at.max():  # vertices on both sides: it crosses
                return False
        vals = cur.pts @ row + off if cur.pts.size else np.zeros(0)
        if vals.size and vals.min() < 0.0 < vals.max():
            return False
        if not (vals.size and vals.max() <= 0.0):  # no point below 0 known
            got = self.lp.minimize(row)
            lb[j] = max(lb[j], got.bound + off)
            if lb[j] >= 0.0:
                return True
            self._add_point(cur, got.x)
            if vals.size and vals.max() > 0.0:
                return False
        got = self.lp.minimize(-row)
        ub[j] = min(ub[j], -got.bound + off)
        if ub[j] <= 0.0:
            return True
        self._add_point(cur, got.x)
        return False

    def _tighten_layer(self, cur: _Cur, lb: np.ndarray, ub: np.ndarray) -> None:
        """Certified LP bounds for every undecided neuron of the layer."""
        for j in np.flatnonzero(~cur.done):
            row, off = cur.M[j], float(cur.c[j])
            lb[j] = max(lb[j], self.lp.minimize(row).bound + off)
            if lb[j] < 0.0:
                ub[j] = min(ub[j], -self.lp.minimize(-row).bound + off)

    def _add_point(self, cur: _Cur, x: np.ndarray | None) -> None:
        if x is not None:
            cur.pts = np.vstack([cur.pts, x[None, : cur.lo.size]])[-MAX_POINTS:]

    def _before_split(self, cur: _Cur, lb: np.ndarray, ub: np.ndarray):
        """None: star dropped; a Counterexample; else (hint point, the undecided neurons
        in split order)."""
        todo = np.flatnonzero(~cur.done)
        nohint = np.full(cur.lo.size, np.nan)
        if self.options.overapprox != "crown":
            return nohint, todo
        self.stats.overapprox += 1
        got = self._overapprox(cur, lb, ub)
        if got is None:
            self.stats.dropped += 1
            return None
        cur.terms, cur.prior, hint, score = got
        if isinstance(hint, Counterexample):
            return hint
        if hint is None:
            hint = nohint
        else:
            self._add_point(cur, hint)
        order = todo[np.argsort(-score[todo], kind="stable")]
        return hint, order

    def _split(self, cur: _Cur, j: int, lb: np.ndarray, ub: np.ndarray, hint: np.ndarray,
               stack: list[Star]) -> None:
        """Push one child of neuron ``j``'s split and continue with the other in place."""
        row, off = cur.M[j].copy(), float(cur.c[j])
        inactive_first = float(row @ hint) + off <= 0.0  # False when no hint (nan)
        here = ((lb.copy(), ub.copy()),) + cur.prior[1:]
        vals = cur.pts @ row + off
        done = cur.done.copy()
        done[j] = True
        M_in, c_in = cur.M.copy(), cur.c.copy()
        M_in[j], c_in[j] = 0.0, 0.0
        cons_in, cons_act = Cons(row, -off, cur.cons), Cons(-row, off, cur.cons)
        box_in = tighten_box(cur.lo, cur.hi, row, -off)
        box_act = tighten_box(cur.lo, cur.hi, -row, off)
        pts_in, pts_act = cur.pts[vals <= 0.0], cur.pts[vals >= 0.0]
        inner_in = inner_act = None
        if cur.inner is not None:
            corners = cur.vs.pts if cur.vs is not None else (
                box_corners(cur.lo, cur.hi) if cur.cons is None else None)
            inner_in = inner_point(corners, cur.inner, row, -off)
            inner_act = inner_point(corners, cur.inner, -row, off)
        self.stats.stars += 1
        if inactive_first:
            stack.append(Star(cur.k, done, cur.M.copy(), cur.c.copy(), cons_act, *box_act,
                              here, cur.terms, pts_act, cur.ext, inner_act))
            cur.M, cur.c, cur.cons, (cur.lo, cur.hi), cur.pts = (M_in, c_in, cons_in,
                                                                 box_in, pts_in)
            cur.inner = inner_in
        else:
            stack.append(Star(cur.k, done, M_in, c_in, cons_in, *box_in, here, cur.terms,
                              pts_in, cur.ext, inner_in))
            cur.cons, (cur.lo, cur.hi), cur.pts = cons_act, box_act, pts_act
            cur.inner = inner_act
        cur.vs = None
        cur.done = done.copy()
        cur.prior = here
        self.lp.load(cur.cons)
        if self.options.contract:
            self._contract(cur)
        # the contracted box may settle more neurons of this layer
        lb2, ub2 = interval(cur.M, cur.c, cur.lo, cur.hi)
        np.maximum(lb, lb2, out=lb)
        np.minimum(ub, ub2, out=ub)

    # ------------------------------------------------------------------ checks

    def _overapprox(self, cur: _Cur, lb: np.ndarray, ub: np.ndarray):
        """None if every term is unreachable on the star, else (open terms, bounds for
        layers ``k..``, a hint point or a confirmed counterexample, split scores)."""
        specs = [self.spec[t] for t in cur.terms]
        lower = None if cur.vs is None else cur.vs.lower
        later, rows, score = self.relaxer.run(cur.k, cur.done, cur.M, cur.c, lb, ub,
                                              cur.lo, cur.hi, cur.prior[1:], specs, lower)
        open_terms: list[int] = []
        hint: np.ndarray | None = None
        for t, (L, l0, mag) in zip(cur.terms, rows, strict=True):
            if self._proven(L, l0, mag, cur.lo, cur.hi, cur.vs):
                continue
            if cur.vs is not None:
                # A vertex where every row is <= 0 leaves the term open: no LP needed
                # (for one row the vertex certificate above was already exact).
                at = (cur.vs.pts @ L.T + l0).max(axis=1)
                best = int(np.argmin(at))
                if at[best] <= 0.0 or L.shape[0] == 1:
                    open_terms.append(t)
                    if hint is None:
                        hint = cur.vs.pts[best]
                    continue
            got = self.lp.min_max(L, l0)
            if got.bound > 0.0:
                continue
            open_terms.append(t)
            if hint is None and got.x is not None:
                hint = got.x
        if not open_terms:
            return None
        prior = (None,) + later
        if hint is not None:
            cex = self._try(hint, open_terms)
            if cex is not None:
                return tuple(open_terms), prior, cex, score
        return tuple(open_terms), prior, hint, score

    @staticmethod
    def _proven(L: np.ndarray, l0: np.ndarray, mag: np.ndarray, lo: np.ndarray,
                hi: np.ndarray, vs: PolyBounds | None = None) -> bool:
        """Some row's linear lower bound is > 0 on the box, or on the polytope by its
        vertex certificate (after the rounding slack)."""
        val = np.minimum(L * lo, L * hi).sum(axis=1) + l0
        slack = FLOAT64(1.0) + FLOAT64.rel * (np.abs(L) @ np.maximum(np.abs(lo), np.abs(hi)) + mag)
        if (val - slack > 0.0).any():
            return True
        if vs is None:
            return False
        val = vs.lower(L) + l0 - FLOAT64(1.0) - FLOAT64.rel * mag
        return bool((val > 0.0).any())

    def _try(self, x: np.ndarray, terms: list[int]) -> Counterexample | None:
        """Replay ``x`` if it violates one of ``terms`` on the chain."""
        y = self.chain.forward(x[None, :])[0]
        for t in terms:
            A, b = self.spec[t]
            if float((A @ y - b).max()) <= 0.0:
                cex = self.replayer.confirm(x, t)
                if cex is not None:
                    return cex
        return None

    def _output(self, M: np.ndarray, c: np.ndarray, terms: tuple[int, ...],
                lo: np.ndarray, hi: np.ndarray, vs: PolyBounds | None = None
                ) -> Counterexample | None:
        """The exact check of a star at the output layer."""
        self.stats.leaves += 1
        for t in terms:
            A, b = self.spec[t]
            L, l0 = A @ M, A @ c - b
            mag = np.abs(A) @ np.abs(c) + np.abs(b)
            if self._proven(L, l0, mag, lo, hi, vs):
                continue
            got = self.lp.min_max(L, l0)
            if got.bound > 0.0:
                continue
            if got.x is not None:
                cex = self._confirm_near(got.x, t, L, l0)
                if cex is not None:
                    return cex
            if got.bound == math.inf:
                continue
            self.stats.unresolved += 1
            log.info("star: output LP of term %d gave %.3g but no confirmed witness", t,
                     got.bound)
        return None

    def _confirm_near(self, x: np.ndarray, t: int, L: np.ndarray,
                      l0: np.ndarray) -> Counterexample | None:
        """Replay the LP point, then points nudged into the star's interior."""
        cex = self.replayer.confirm(x, t)
        if cex is not None:
            return cex
        centre = (self.lp.lo + self.lp.hi) / 2.0
        for w in (1e-6, 1e-4, 1e-2):
            cand = (1.0 - w) * x + w * centre
            if float((L @ cand + l0).max()) <= 0.0:
                cex = self.replayer.confirm(cand, t)
                if cex is not None:
                    return cex
        return None
