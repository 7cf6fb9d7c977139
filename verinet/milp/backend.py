"""Thin adapters over the MILP/LP solvers; the only module that imports pulp, and with
:mod:`verinet.milp.highs` (the star search's small LPs use it too) the only one that
builds HiGHS instances.

Every model is *minimised*.  A backend keeps a Python-side copy of the model
(:class:`ModelArrays`) so callers can certify LP bounds independently of the solver
(see :mod:`verinet.milp.certify`).

What is checked and what is trusted
-----------------------------------
* Checked here: the solver's status is mapped conservatively; a primal vector is only
  returned when the solver reports one; non-finite objective values become NaN/-inf.
* Trusted from the solver: ``objective`` (the incumbent value, feasible up to the
  solver's feasibility tolerances) and ``best_bound`` (the proven lower bound on the
  minimum: HiGHS' MIP dual bound, or the optimal value of an LP / of a MILP reported
  optimal).  These are only as good as the solver's tolerances: HiGHS is run with
  ``mip_feasibility_tolerance=1e-9``, ``mip_rel_gap=0``, ``mip_abs_gap=1e-7``;
  CBC (PuLP) with ``gapRel=0``, and CBC reports values to 8 significant digits only
  (``value_tol``).  ``row_duals`` (HiGHS LPs only) need no trust: any vector of row
  multipliers yields a sound bound through :func:`verinet.milp.certify.safe_lower_bound`.
"""

from __future__ import annotations

import enum
import logging
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp

from verinet.interrupts import Pending, deferred_signals
from verinet.milp import MILP_BACKENDS
from verinet.milp.highs import new_highs

log = logging.getLogger(__name__)


class SolverStatus(enum.Enum):
    OPTIMAL = "optimal"          # solved to optimality (zero relative gap)
    INFEASIBLE = "infeasible"
    UNBOUNDED = "unbounded"      # unbounded or infeasible
    TIME_LIMIT = "time limit"
    STOPPED = "stopped early"    # a requested early-termination criterion fired
    ERROR = "error"


@dataclass(frozen=True)
class SolveResult:
    """Outcome of one solve.  ``best_bound`` is a lower bound on the minimum (``-inf``
    when nothing is proven, ``+inf`` when infeasible); ``objective`` the incumbent's
    value (``nan`` without one); ``x`` the incumbent (``None`` without one)."""

    status: SolverStatus
    objective: float
    best_bound: float
    x: np.ndarray | None
    seconds: float
    row_duals: np.ndarray | None = None
    message: str = ""


@dataclass(frozen=True)
class ModelArrays:
    """``min cost @ x`` s.t. ``row_lower <= matrix @ x <= row_upper``,
    ``col_lower <= x <= col_upper`` (integrality ignored: the LP relaxation)."""

    cost: np.ndarray
    col_lower: np.ndarray
    col_upper: np.ndarray
    matrix: sp.csr_matrix
    row_lower: np.ndarray
    row_upper: np.ndarray
    abs_matrix: sp.csr_matrix  # |matrix|, for rounding-error bounds


class MilpBackend(Protocol):
    """The small solver API the encoder, the tightener and the verifier use."""

    name: str
    value_tol: tuple[float, float]  # (abs, rel) accuracy of the values the solver reports

    @property
    def num_vars(self) -> int: ...

    def add_vars(self, lower: Any, upper: Any, integer: bool = False) -> np.ndarray: ...

    def add_rows(self, coeffs: Any, lower: Any, upper: Any) -> np.ndarray: ...

    def set_var_bounds(self, idx: Any, lower: Any, upper: Any) -> None: ...

    def set_objective(self, idx: Any, coef: Any) -> None: ...

    def set_time_limit(self, seconds: float | None) -> None: ...

    def set_stop(self, proved_above: float | None = None,
                 found_below: float | None = None) -> None: ...

    def solve(self, relax: bool = False, warm: bool = True) -> SolveResult: ...

    def model(self) -> ModelArrays: ...


def _vec(a: Any, n: int) -> np.ndarray:
    v = np.asarray(a, dtype=np.float64).reshape(-1)
    return np.full(n, float(v[0])) if v.size == 1 and n != 1 else v


@dataclass
class _Store:
    """Python-side copy of the model shared by both adapters."""

    col_lower: np.ndarray = field(default_factory=lambda: np.zeros(0))
    col_upper: np.ndarray = field(default_factory=lambda: np.zeros(0))
    integer: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    cost: np.ndarray = field(default_factory=lambda: np.zeros(0))
    blocks: list[sp.csr_matrix] = field(default_factory=list)
    row_lower: np.ndarray = field(default_factory=lambda: np.zeros(0))
    row_upper: np.ndarray = field(default_factory=lambda: np.zeros(0))
    _matrix: sp.csr_matrix | None = None
    _abs: sp.csr_matrix | None = None

    @property
    def n_cols(self) -> int:
        return int(self.col_lower.size)

    @property
    def n_rows(self) -> int:
        return int(self.row_lower.size)

    def add_cols(self, lo: np.ndarray, hi: np.ndarray, integer: bool) -> np.ndarray:
        if lo.shape != hi.shape or np.isnan(lo).any() or np.isnan(hi).any() or (lo > hi).any():
            raise ValueError("variable bounds must be NaN-free with lower <= upper")
        start = self.n_cols
        self.col_lower = np.concatenate([self.col_lower, lo])
        self.col_upper = np.concatenate([self.col_upper, hi])
        self.integer = np.concatenate([self.integer, np.full(lo.size, integer)])
        self.cost = np.concatenate([self.cost, np.zeros(lo.size)])
        self._matrix = self._abs = None
        return np.arange(start, self.n_cols)

    def add_rows(self, coeffs: Any, lo: Any, hi: Any) -> tuple[np.ndarray, sp.csr_matrix]:
        m = sp.csr_matrix(coeffs, dtype=np.float64)
        if m.shape[1] > self.n_cols:
            raise ValueError(f"row coefficients use {m.shape[1]} columns, model has {self.n_cols}")
        m = sp.csr_matrix((m.data, m.indices, m.indptr), shape=(m.shape[0], self.n_cols))
        m.eliminate_zeros()
        lo, hi = _vec(lo, m.shape[0]), _vec(hi, m.shape[0])
        if not np.isfinite(m.data).all() or np.isnan(lo).any() or np.isnan(hi).any():
            raise ValueError("row data must be finite (sides may be infinite, not NaN)")
        start = self.n_rows
        self.blocks.append(m)
        self.row_lower = np.concatenate([self.row_lower, lo])
        self.row_upper = np.concatenate([self.row_upper, hi])
        self._matrix = self._abs = None
        return np.arange(start, self.n_rows), m

    def matrix(self) -> sp.csr_matrix:
        if self._matrix is None:
            n = self.n_cols
            blocks = [sp.csr_matrix((b.data, b.indices, b.indptr), shape=(b.shape[0], n))
                      for b in self.blocks]
            self._matrix = (sp.vstack(blocks, format="csr") if blocks
                            else sp.csr_matrix((0, n)))
        return self._matrix

    def arrays(self) -> ModelArrays:
        m = self.matrix()
        if self._abs is None:
            self._abs = abs(m)
        return ModelArrays(self.cost.copy(), self.col_lower.copy(), self.col_upper.copy(),
                           m, self.row_lower.copy(), self.row_upper.copy(), self._abs)


class _StoreBackend:
    """Model building shared by both adapters (all edits go to the store first)."""

    name = "base"
    value_tol = (0.0, 0.0)

    def __init__(self) -> None:
        self._s = _Store()
        self._time_limit: float | None = None
        self._proved_above: float | None = None
        self._found_below: float | None = None

    @property
    def num_vars(self) -> int:
        return self._s.n_cols

    def add_vars(self, lower: Any, upper: Any, integer: bool = False) -> np.ndarray:
        lo = np.asarray(lower, dtype=np.float64).reshape(-1)
        return self._s.add_cols(lo, _vec(upper, lo.size), integer)

    def add_rows(self, coeffs: Any, lower: Any, upper: Any) -> np.ndarray:
        idx, _ = self._s.add_rows(coeffs, lower, upper)
        return idx

    def set_var_bounds(self, idx: Any, lower: Any, upper: Any) -> None:
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        lo, hi = _vec(lower, idx.size), _vec(upper, idx.size)
        if np.isnan(lo).any() or np.isnan(hi).any() or (lo > hi).any():
            raise ValueError("variable bounds must be NaN-free with lower <= upper")
        self._s.col_lower[idx] = lo
        self._s.col_upper[idx] = hi

    def set_objective(self, idx: Any, coef: Any) -> None:
        """Objective ``sum coef * x[idx]`` (every other cost becomes 0)."""
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        self._s.cost = np.zeros(self._s.n_cols)
        np.add.at(self._s.cost, idx, _vec(coef, idx.size))

    def set_time_limit(self, seconds: float | None) -> None:
        self._time_limit = None if seconds is None else max(float(seconds), 1e-3)

    def set_stop(self, proved_above: float | None = None,
                 found_below: float | None = None) -> None:
        """Ask to stop once the proven bound exceeds ``proved_above`` or an incumbent with
        value ``<= found_below`` exists.  Best effort: a backend may solve to the end."""
        self._proved_above, self._found_below = proved_above, found_below

    def model(self) -> ModelArrays:
        return self._s.arrays()


# ----------------------------------------------------------------------------- HiGHS

_HIGHS_OPTIONS: dict[str, Any] = {
    "output_flag": False,
    "mip_rel_gap": 0.0,
    "mip_abs_gap": 1e-7,
    "mip_feasibility_tolerance": 1e-9,
    "random_seed": 0,
    # Proofs need the dual bound only; witnesses come from the attack and from B&B leaves.
    # Measured on mnist-net_256x2 prop_6_0.03: terms 6/7 took 16.5/8.7 s at the default
    # effort 0.05 and 12.1/4.8 s at 0.
    "mip_heuristic_effort": 0.0,
}


class HighsBackend(_StoreBackend):
    """HiGHS through highspy.  One ``Highs`` object lives as long as the backend, so
    re-solving after changing only the objective or bounds warm-starts the simplex."""

    name = "highs"
    value_tol = (1e-9, 1e-9)

    def __init__(self, threads: int = 1) -> None:
        super().__init__()
        import highspy

        self._hp = highspy
        self._h = new_highs()
        for key, val in {**_HIGHS_OPTIONS, "threads": int(threads)}.items():
            self._h.setOptionValue(key, val)
        self._cols = 0   # columns already passed to HiGHS
        self._rows = 0   # rows already passed to HiGHS
        self._cost = np.zeros(0)
        self._lo = np.zeros(0)
        self._hi = np.zeros(0)
        self._relaxed = False
        self._warm = False  # the last solve left an optimal LP basis
        self._signal: Pending | None = None  # a SIGINT/SIGTERM recorded during a MIP run
        self._h.cbMipInterrupt.subscribe(self._interrupt)
        # LP solves (simplex or interior point) stop on a recorded signal too
        self._h.cbSimplexInterrupt.subscribe(self._lp_interrupt)
        self._h.cbIpmInterrupt.subscribe(self._lp_interrupt)

    def _lp_interrupt(self, event: Any) -> None:
        """LP callback: stop on a SIGINT/SIGTERM recorded during the run."""
        event.data_in.user_interrupt = self._signal is not None and bool(self._signal)

    def _interrupt(self, event: Any) -> None:
        """MIP callback; the interrupt flag persists across runs, so always write it.  A
        signal recorded meanwhile (:func:`deferred_signals`) stops the run too."""
        out = event.data_out
        dual, primal = float(out.mip_dual_bound), float(out.mip_primal_bound)
        stop = (self._proved_above is not None and dual > self._proved_above) or (
            self._found_below is not None and primal <= self._found_below) or (
            self._signal is not None and bool(self._signal))
        event.data_in.user_interrupt = bool(stop)

    def _sync(self, relax: bool) -> None:
        s, h = self._s, self._h
        new = s.n_cols - self._cols
        if new:
            empty_i = np.zeros(0, dtype=np.int32)
            h.addCols(new, np.zeros(new), s.col_lower[self._cols:], s.col_upper[self._cols:],
                      0, empty_i, empty_i, np.zeros(0))
            ints = np.flatnonzero(s.integer[self._cols:]) + self._cols
            if ints.size and not self._relaxed:
                h.changeColsIntegrality(ints.size, ints.astype(np.int32),
                                        np.ones(ints.size, dtype=np.uint8))
            self._cost = np.concatenate([self._cost, np.zeros(new)])
            self._lo = np.concatenate([self._lo, s.col_lower[self._cols:]])
            self._hi = np.concatenate([self._hi, s.col_upper[self._cols:]])
            self._cols = s.n_cols
        if s.n_rows > self._rows:
            self._push_rows()
        self._push_changes()
        if relax != self._relaxed:
            ints = np.flatnonzero(s.integer).astype(np.int32)
            if ints.size:
                flag = np.zeros if relax else np.ones
                h.changeColsIntegrality(ints.size, ints, flag(ints.size, dtype=np.uint8))
            self._relaxed = relax

    def _push_rows(self) -> None:
        s = self._s
        m = s.matrix()[self._rows:]
        self._h.addRows(m.shape[0], s.row_lower[self._rows:], s.row_upper[self._rows:],
                        m.nnz, m.indptr[:-1].astype(np.int32), m.indices.astype(np.int32),
                        m.data)
        self._rows = s.n_rows

    def _push_changes(self) -> None:
        s, h = self._s, self._h
        ch = np.flatnonzero(s.cost != self._cost)
        if ch.size:
            h.changeColsCost(ch.size, ch.astype(np.int32), s.cost[ch])
            self._cost = s.cost.copy()
        ch = np.flatnonzero((s.col_lower != self._lo) | (s.col_upper != self._hi))
        if ch.size:
            h.changeColsBounds(ch.size, ch.astype(np.int32), s.col_lower[ch], s.col_upper[ch])
            self._lo, self._hi = s.col_lower.copy(), s.col_upper.copy()

    def solve(self, relax: bool = False, warm: bool = True) -> SolveResult:
        """Solve; ``warm=False`` discards the previous basis (a cold start with presolve
        can beat a warm start whose basis is far from the new optimum)."""
        h = self._h
        self._sync(relax)
        if not warm:
            h.clearSolver()
            self._warm = False
        h.setOptionValue("time_limit", math.inf if self._time_limit is None
                         else self._time_limit)
        target = -math.inf if self._found_below is None else self._found_below
        h.setOptionValue("objective_target", target)
        is_lp = relax or not self._s.integer.any()
        # Re-solving an LP from the previous basis: presolve would only discard it.
        h.setOptionValue("presolve", "off" if is_lp and self._warm else "choose")
        t0 = time.perf_counter()
        # A KeyboardInterrupt raised inside a callback would be swallowed by HiGHS (an
        # error status, folded into a bound): record the signal instead, let the MIP or
        # LP interrupt callback stop the run, and re-raise it when run() returns.
        with deferred_signals() as pending:
            self._signal = pending
            try:
                h.run()
            finally:
                self._signal = None
        seconds = time.perf_counter() - t0
        res = self._result(is_lp, seconds)
        self._warm = is_lp and res.status is SolverStatus.OPTIMAL
        return res

    def _result(self, is_lp: bool, seconds: float) -> SolveResult:
        h, hp = self._h, self._hp
        ms = h.getModelStatus()
        S = hp.HighsModelStatus
        status = {
            S.kOptimal: SolverStatus.OPTIMAL, S.kInfeasible: SolverStatus.INFEASIBLE,
            S.kUnbounded: SolverStatus.UNBOUNDED, S.kUnboundedOrInfeasible: SolverStatus.UNBOUNDED,
            S.kTimeLimit: SolverStatus.TIME_LIMIT, S.kInterrupt: SolverStatus.STOPPED,
            S.kObjectiveTarget: SolverStatus.STOPPED, S.kObjectiveBound: SolverStatus.STOPPED,
        }.get(ms, SolverStatus.ERROR)
        info = h.getInfo()
        sol = h.getSolution()
        has_x = bool(sol.value_valid) and int(info.primal_solution_status) == 2
        x = np.asarray(sol.col_value, dtype=np.float64) if has_x else None
        obj = float(info.objective_function_value) if has_x else math.nan
        duals = None
        if is_lp:
            bound = obj if status is SolverStatus.OPTIMAL else -math.inf
            if sol.dual_valid:
                duals = np.asarray(sol.row_dual, dtype=np.float64)
        else:
            bound = float(info.mip_dual_bound)
        if status is SolverStatus.INFEASIBLE:
            bound, x, obj = math.inf, None, math.nan
        if math.isnan(bound):
            bound = -math.inf
        return SolveResult(status, obj, bound, x, seconds, duals, h.modelStatusToString(ms))


# ----------------------------------------------------------------------------- PuLP / CBC


class PulpBackend(_StoreBackend):
    """CBC through PuLP.  The model is rebuilt at every solve (PuLP writes a file for
    CBC anyway).  No early termination and no duals; CBC prints values to 8 significant
    digits, hence the loose ``value_tol``.  ``best_bound`` is the objective when CBC
    reports optimality, ``-inf`` otherwise."""

    name = "pulp"
    value_tol = (1e-9, 1e-7)

    def __init__(self, threads: int = 1) -> None:
        super().__init__()
        import pulp

        self._pulp = pulp
        self._threads = threads

    def _build(self, relax: bool) -> tuple[Any, list[Any]]:
        pulp, s = self._pulp, self._s
        prob = pulp.LpProblem("verinet", pulp.LpMinimize)
        xs = []
        for j in range(s.n_cols):
            lo, hi = s.col_lower[j], s.col_upper[j]
            cat = "Integer" if s.integer[j] and not relax else "Continuous"
            xs.append(prob.add_variable(f"v{j}", None if lo == -math.inf else float(lo),
                                        None if hi == math.inf else float(hi), cat))
        nz = np.flatnonzero(s.cost)
        prob += pulp.LpAffineExpression([(xs[j], float(s.cost[j])) for j in nz])
        m = s.matrix()
        for i in range(s.n_rows):
            sl = slice(m.indptr[i], m.indptr[i + 1])
            expr = pulp.LpAffineExpression(
                [(xs[j], float(c)) for j, c in zip(m.indices[sl], m.data[sl], strict=True)])
            lo, hi = float(s.row_lower[i]), float(s.row_upper[i])
            if lo == hi:
                prob += expr == lo
                continue
            if lo > -math.inf:
                prob += expr >= lo
            if hi < math.inf:
                prob += expr <= hi
        return prob, xs

    def solve(self, relax: bool = False, warm: bool = True) -> SolveResult:
        pulp = self._pulp
        prob, xs = self._build(relax)
        kw: dict[str, Any] = {"msg": False, "gapRel": 0.0, "threads": self._threads}
        if self._time_limit is not None:
            kw["timeLimit"] = self._time_limit
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings():  # PuLP 3.x deprecation notices for its bundled CBC
                warnings.simplefilter("ignore", DeprecationWarning)
                prob.solve(pulp.PULP_CBC_CMD(**kw))
        except pulp.PulpSolverError as err:
            log.warning("CBC failed: %s", err)
            return SolveResult(SolverStatus.ERROR, math.nan, -math.inf, None,
                               time.perf_counter() - t0, message=str(err))
        seconds = time.perf_counter() - t0
        return self._result(prob, xs, seconds)

    def _result(self, prob: Any, xs: list[Any], seconds: float) -> SolveResult:
        pulp = self._pulp
        sol = prob.sol_status
        status = {
            pulp.LpSolutionOptimal: SolverStatus.OPTIMAL,
            pulp.LpSolutionIntegerFeasible: SolverStatus.TIME_LIMIT,
            pulp.LpSolutionInfeasible: SolverStatus.INFEASIBLE,
            pulp.LpSolutionUnbounded: SolverStatus.UNBOUNDED,
        }.get(sol, SolverStatus.ERROR)
        if status is SolverStatus.ERROR and self._time_limit is not None \
                and seconds >= 0.9 * self._time_limit:
            status = SolverStatus.TIME_LIMIT
        x = None
        if status in (SolverStatus.OPTIMAL, SolverStatus.TIME_LIMIT):
            vals = [v.varValue for v in xs]
            if all(v is not None for v in vals):
                x = np.asarray(vals, dtype=np.float64)
        obj = float(self._s.cost @ x) if x is not None else math.nan
        bound = obj if status is SolverStatus.OPTIMAL and x is not None else -math.inf
        if status is SolverStatus.INFEASIBLE:
            bound = math.inf
        msg = pulp.LpStatus.get(prob.status, "?")
        return SolveResult(status, obj, bound, x, seconds, None, msg)


def make_backend(name: str = "highs", threads: int = 1) -> MilpBackend:
    """A fresh, empty backend: ``"highs"`` (default) or ``"pulp"`` (:data:`MILP_BACKENDS`;
    ``"cbc"`` is accepted for ``"pulp"``)."""
    key = name.lower()
    if key == "highs":
        return HighsBackend(threads)
    if key in ("pulp", "cbc"):
        return PulpBackend(threads)
    raise ValueError(f"unknown MILP backend {name!r} "
                     f"(use {' or '.join(repr(b) for b in MILP_BACKENDS)})")
