"""Tiny LPs over a star's input polytope, with dual-certified bounds (HiGHS via highspy).

The polytope is ``P = {x in [lo, hi] : a_r . x <= beta_r for every split row r}`` in the
input space of the network (ACAS Xu: 5 variables and a few dozen rows).  One ``Highs``
object lives as long as the search; split rows form a persistent linked list
(:class:`Cons`), and :meth:`PolyLp.load` only deletes/adds the rows that differ from the
loaded list (depth-first search shares long prefixes), so the simplex warm-starts.

**What is trusted from the solver: nothing but a hint.**  Every bound this module reports
is recomputed from HiGHS's dual values by weak duality: for multipliers ``mu >= 0`` of the
split rows (and ``lam >= 0``, ``sum lam = 1`` of the objective rows in :meth:`min_max`)

    min_{x in P} c.x  >=  min_{x in box} (c + G^T mu).x - mu.h

and the right side is evaluated exactly over the box (per coordinate), then lowered by the
float64 rounding slack ``FLOAT64(M) = 1e-10 * M + 1e-12`` (``M``: the magnitude of the
summed terms; the one rule of :mod:`verinet.bounds.fp`).  Wrong or inaccurate duals can
only make the certified bound weaker, never unsound.  An LP HiGHS calls infeasible is
reported empty only when its dual ray gives a Farkas certificate that passes the same
check; otherwise the bound is ``-inf`` (unknown).  The primal point is a candidate only
(callers replay it).

Style note: like ``verinet.milp.backend`` this is a thin solver adapter; it is kept apart
from the MILP store because its per-call overhead (about 0.1 ms warm) is what matters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from verinet.bounds.fp import FLOAT64
from verinet.milp.highs import new_highs

#: HiGHS simplex_strategy: primal simplex (4) for the solves.  Consecutive LPs differ in
#: their objective only, which keeps the last basis primal feasible: measured on ACAS Xu
#: (star search, one worker) 4_7 property 1 13.1 s vs 16.1 s with the dual simplex,
#: 1_9 property 2 6.3 vs 7.0 s, 1_1 property 3 9.4 vs 10.9 s, with the same stars.
#: Infeasibility certificates (dual rays), and any solve the primal simplex leaves
#: undecided, come from the dual simplex (1).
SIMPLEX = 4
DUAL_SIMPLEX = 1


@dataclass(frozen=True, eq=False)
class Cons:
    """The split row ``a . x <= beta`` on top of ``parent`` (a persistent list)."""

    a: np.ndarray
    beta: float
    parent: Cons | None
    depth: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "depth", 1 if self.parent is None else self.parent.depth + 1)

    def chain(self) -> list[Cons]:
        """The rows from the root down to this one."""
        out: list[Cons] = []
        node: Cons | None = self
        while node is not None:
            out.append(node)
            node = node.parent
        out.reverse()
        return out


@dataclass(frozen=True)
class LpBound:
    """``bound``: a certified lower bound of the minimum (``inf``: the polytope is empty,
    certified; ``-inf``: nothing certified).  ``x``: the solver's minimiser (a hint)."""

    bound: float
    x: np.ndarray | None


class PolyLp:
    """LPs ``min c.x`` and ``min_x max_i (L_i x + l_i)`` over the loaded polytope."""

    def __init__(self, lo: np.ndarray, hi: np.ndarray) -> None:
        import highspy

        self._hp = highspy
        self.lo = np.asarray(lo, dtype=np.float64).copy()
        self.hi = np.asarray(hi, dtype=np.float64).copy()
        self.d = d = self.lo.size
        self._xmax = np.maximum(np.abs(self.lo), np.abs(self.hi))
        h = new_highs()
        for key, val in {"output_flag": False, "presolve": "off", "threads": 1,
                         "simplex_strategy": SIMPLEX,
                         "primal_feasibility_tolerance": 1e-9,
                         "dual_feasibility_tolerance": 1e-9}.items():
            h.setOptionValue(key, val)
        none = np.zeros(0, dtype=np.int32)
        # columns: x (d), then t (bounds [0, 0] unless min_max uses it)
        h.addCols(d + 1, np.zeros(d + 1), np.append(self.lo, 0.0), np.append(self.hi, 0.0),
                  0, none, none, np.zeros(0))
        self._h = h
        self._idx = np.arange(d + 1, dtype=np.int32)
        self._loaded: list[Cons] = []
        self.G = np.zeros((0, d))
        self.h = np.zeros(0)
        self._row_mag = np.zeros(0)  # |G| @ max|x| + |h|, per split row
        self.solves = 0

    # -------------------------------------------------------------- rows

    def load(self, cons: Cons | None) -> None:
        """Make the loaded split rows equal to ``cons``'s chain."""
        target = [] if cons is None else cons.chain()
        keep = 0
        n = min(len(target), len(self._loaded))
        while keep < n and target[keep] is self._loaded[keep]:
            keep += 1
        if keep < len(self._loaded):
            drop = np.arange(keep, len(self._loaded), dtype=np.int32)
            self._h.deleteRows(drop.size, drop)
            del self._loaded[keep:]
        new = target[keep:]
        if new:
            self._add_rows(np.stack([c.a for c in new]), np.array([c.beta for c in new]), 0.0)
            self._loaded.extend(new)
        if keep < n or new or len(self._loaded) != self.G.shape[0]:
            self.G = (np.stack([c.a for c in self._loaded]) if self._loaded
                      else np.zeros((0, self.d)))
            self.h = np.array([c.beta for c in self._loaded])
            self._row_mag = np.abs(self.G) @ self._xmax + np.abs(self.h)

    def _add_rows(self, A: np.ndarray, ub: np.ndarray, t_coef: float | None) -> None:
        """Rows ``A x (+ t_coef t) <= ub`` (``t_coef=0``: no t entry)."""
        k, d = A.shape
        if t_coef:
            A = np.hstack([A, np.full((k, 1), t_coef)])
        idx = np.tile(np.arange(A.shape[1], dtype=np.int32), k)
        start = np.arange(0, k * A.shape[1], A.shape[1], dtype=np.int32)
        self._h.addRows(k, np.full(k, -self._hp.kHighsInf), ub, A.size, start, idx,
                        A.ravel().astype(np.float64))

    # -------------------------------------------------------------- solves

    def minimize(self, c: np.ndarray) -> LpBound:
        """Certified ``min_{x in P} c.x``."""
        cost = np.append(np.asarray(c, dtype=np.float64), 0.0)
        status, x, y = self._solve(cost)
        if status == "empty":
            return LpBound(math.inf, None)
        if y is None:
            return LpBound(-math.inf, x)
        mu = np.maximum(-y, 0.0)
        return LpBound(self._certify(cost[:-1], mu, 0.0, 0.0), x)

    def min_max(self, L: np.ndarray, l0: np.ndarray) -> LpBound:
        """Certified ``min_{x in P} max_i (L_i . x + l_i)`` (``L``: (k, d))."""
        k = L.shape[0]
        h = self._h
        h.changeColBounds(self.d, -self._hp.kHighsInf, self._hp.kHighsInf)
        self._add_rows(L, -l0, -1.0)
        try:
            cost = np.zeros(self.d + 1)
            cost[-1] = 1.0
            status, x, y = self._solve(cost)
        finally:
            base = len(self._loaded)
            h.deleteRows(k, np.arange(base, base + k, dtype=np.int32))
            h.changeColBounds(self.d, 0.0, 0.0)
        if status == "empty":
            return LpBound(math.inf, None)
        if x is not None:
            x = x[: self.d]
        if y is None:
            return LpBound(-math.inf, x)
        lam = np.maximum(-y[len(self._loaded):], 0.0)
        s = float(lam.sum())
        if not s > 0.0:
            return LpBound(-math.inf, x)
        lam = lam / s
        mu = np.maximum(-y[: len(self._loaded)], 0.0)
        c = lam @ L
        off = float(lam @ l0)
        return LpBound(self._certify(c, mu, off, float(np.abs(lam) @ np.abs(l0))), x)

    def _certify(self, c: np.ndarray, mu: np.ndarray, off: float, off_mag: float) -> float:
        """``min_box (c + G^T mu).x - mu.h + off``, lowered by the rounding slack."""
        r = c + mu @ self.G if mu.size else c
        val = float(np.minimum(r * self.lo, r * self.hi).sum()) - float(mu @ self.h) + off
        mag = (float(np.abs(r) @ self._xmax) + float(np.abs(c) @ self._xmax)
               + float(np.abs(mu) @ self._row_mag) + off_mag)
        return val - FLOAT64(mag)

    def _solve(self, cost: np.ndarray) -> tuple[str, np.ndarray | None, np.ndarray | None]:
        """Run; ("ok", x, row duals) / ("empty", None, None) when certified infeasible /
        ("unknown", x or None, None)."""
        h, hp = self._h, self._hp
        h.changeColsCost(self.d + 1, self._idx, cost)
        h.run()
        self.solves += 1
        ms = h.getModelStatus()
        optimal, infeasible = hp.HighsModelStatus.kOptimal, hp.HighsModelStatus.kInfeasible
        empty = ms == infeasible and self._farkas()
        if ms != optimal and not empty:
            # The primal simplex stopped without an answer (HiGHS "unknown", rare) or
            # without a dual ray: the dual simplex from scratch gives both.
            ms = self._run_dual()
            empty = ms == infeasible and self._farkas()
        if ms == optimal:
            sol = h.getSolution()
            x = np.asarray(sol.col_value, dtype=np.float64)
            y = np.asarray(sol.row_dual, dtype=np.float64) if sol.dual_valid else None
            return "ok", x, y
        if empty:
            return "empty", None, None
        # Anything else: start the next solve from scratch rather than a broken basis.
        h.clearSolver()
        return "unknown", None, None

    def _run_dual(self):
        """One dual-simplex solve from scratch; the model status."""
        h = self._h
        h.setOptionValue("simplex_strategy", DUAL_SIMPLEX)
        try:
            h.clearSolver()
            h.run()
            self.solves += 1
            return h.getModelStatus()
        finally:
            h.setOptionValue("simplex_strategy", SIMPLEX)

    def _farkas(self) -> bool:
        """True iff HiGHS's dual ray certifies that the split rows and box are empty."""
        if not self._loaded:
            return False
        try:
            got = self._h.getDualRay()
        except Exception:  # noqa: BLE001 - an API without rays: simply no certificate
            return False
        has, ray = (got[1], got[2]) if len(got) == 3 else (False, None)
        if not has or ray is None:
            return False
        ray = np.asarray(ray, dtype=np.float64)[: len(self._loaded)]
        for sign in (1.0, -1.0):
            mu = np.maximum(sign * ray, 0.0)
            if mu.any() and self._certify(np.zeros(self.d), mu, 0.0, 0.0) > 0.0:
                return True
        return False
