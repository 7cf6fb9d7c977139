"""Complete verification of one property term by MILP.

For a term (box, unsafe ``A y <= b``) we solve::

    min s   s.t.  s >= A_i y - b_i  (every row i),  y = f(x),  x in box

on the exact MIPVerify encoding of ``f``.  ``s* = min_x max_i (A_i f(x) - b_i)``:
the term is reachable iff ``s* <= 0``.

* VERIFIED (term unreachable) is claimed only when the solver's proven dual bound on
  ``s*`` exceeds ``tol`` (``MILP_TOL`` by default).  The dual bound is trusted from the
  solver up to its feasibility / integrality tolerances (HiGHS runs with
  ``mip_feasibility_tolerance=1e-9``) and lowered by the backend's ``value_tol``; when
  no ReLU is unstable the model is an LP and the bound is certified from its duals
  instead.  The big-M constants come only from the sound ``LayerBounds`` given.  A solver
  claim of infeasibility is not taken as a proof (with sound bounds the model always has
  the true graph points): it gives UNKNOWN.
* FALSIFIED means a *candidate*: the solver found a point with ``s <= 0``.  Its input
  ``x`` (clipped into the box) is returned for the caller to replay on the real network;
  ``candidate_violation`` is its violation replayed on the network in float64.
* Otherwise UNKNOWN (time limit, solver trouble, or ``0 < s* <= tol``).

With HiGHS the search stops as soon as either conclusion is reached (MIP callback on
the dual/primal bound plus ``objective_target``); CBC solves to the end.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp

from verinet.bounds.fp import fp_slack
from verinet.bounds.interval import LayerBounds
from verinet.ir.chain import Chain
from verinet.milp.backend import MilpBackend, SolveResult, SolverStatus, make_backend
from verinet.milp.certify import safe_lower_bound
from verinet.milp.problem import MilpProblem, chain_problem
from verinet.spec.property import Halfspaces
from verinet.types import Box, InputError, Status

log = logging.getLogger(__name__)

MILP_TOL = 1e-6


@dataclass(frozen=True)
class MilpOutcome:
    """Result of a MILP query on one term.

    ``bound``: proven lower bound on ``s*`` (``-inf`` if none);
    ``objective``: best incumbent ``s`` found (``nan`` if none);
    ``candidate``: flat input in the box (FALSIFIED only, or the minimiser for
    :func:`milp_min_margin`); ``candidate_violation``: ``unsafe.violation`` of the network's
    output at ``candidate``; ``solver_status``: the backend's status.
    """

    status: Status
    bound: float
    objective: float
    candidate: np.ndarray | None
    candidate_violation: float
    seconds: float
    solver_status: SolverStatus
    backend: str = "highs"
    n_binaries: int = 0


def _s_lower(unsafe: Halfspaces, lo: np.ndarray, hi: np.ndarray) -> float:
    """A sound lower bound on ``max_i (A_i y - b_i)`` from the output bounds."""
    A = unsafe.A
    with np.errstate(invalid="ignore"):
        rows = np.where(A > 0, A * lo, np.where(A < 0, A * hi, 0.0)).sum(axis=1) - unsafe.b
        mag = np.abs(np.where(A != 0, A * np.maximum(np.abs(lo), np.abs(hi)), 0.0)).sum(axis=1)
    best = float(np.max(rows - fp_slack(mag + np.abs(unsafe.b))))
    return best if math.isfinite(best) else -math.inf


def _solve_violation(
    problem: MilpProblem, box: Box, unsafe: Halfspaces,
    backend: str, time_limit: float | None, tol: float, early_stop: bool,
    may_be_empty: bool = False,
) -> MilpOutcome:
    t0 = time.perf_counter()
    if unsafe.n_outputs != problem.n_outputs:
        raise InputError(f"unsafe set has {unsafe.n_outputs} outputs, the network "
                         f"{problem.n_outputs}")
    if box.dim != problem.n_inputs:
        raise InputError(f"box has {box.dim} inputs, the network expects {problem.n_inputs}")
    if unsafe.A.shape[0] == 0:  # empty conjunction: reachable iff the box is non-empty
        x = box.clip(np.nan_to_num(box.center, nan=0.0))
        return MilpOutcome(Status.FALSIFIED, -math.inf, 0.0, x, 0.0,
                           time.perf_counter() - t0, SolverStatus.OPTIMAL, backend)
    be = make_backend(backend)
    enc = problem.encode(be, box)
    s = be.add_vars([_s_lower(unsafe, problem.output_lower, problem.output_upper)], [np.inf])
    m = unsafe.A.shape[0]
    coeffs = sp.lil_matrix((m, be.num_vars))
    coeffs[:, s[0]] = 1.0
    coeffs[:, enc.outputs] = -unsafe.A
    be.add_rows(coeffs.tocsr(), -unsafe.b, np.inf)  # s - A_i y >= -b_i
    be.set_objective(s, [1.0])
    be.set_time_limit(time_limit)
    if early_stop:
        be.set_stop(proved_above=tol, found_below=0.0)
    res = _conservative(be, be.solve())
    status, cand, viol = _classify(problem, box, unsafe, res, enc.x, tol, may_be_empty)
    if not early_stop and res.x is not None:  # min-margin query: report the minimiser
        cand = box.clip(res.x[enc.x])
        viol = float(unsafe.violation(problem.forward(cand)))
    return MilpOutcome(status, res.best_bound, res.objective, cand, viol,
                       time.perf_counter() - t0, res.status, be.name, enc.n_binaries)


def _conservative(be: MilpBackend, res: SolveResult) -> SolveResult:
    """The proven bound made conservative: certified from row duals when the model was
    solved as an LP (no unstable ReLU), else widened by the backend's ``value_tol``."""
    if res.status is SolverStatus.INFEASIBLE:
        return res
    if res.row_duals is not None:
        return replace(res, best_bound=safe_lower_bound(be.model(), res.row_duals))
    b = res.best_bound
    if math.isfinite(b):
        b -= be.value_tol[0] + be.value_tol[1] * abs(b)
    return replace(res, best_bound=b)


def _classify(problem: MilpProblem, box: Box, unsafe: Halfspaces, res: SolveResult,
              xcols: np.ndarray, tol: float, may_be_empty: bool = False,
              ) -> tuple[Status, np.ndarray | None, float]:
    bound, obj, x = res.best_bound, res.objective, res.x
    if res.status is SolverStatus.INFEASIBLE:
        # With sound bounds every true (x, f(x)) is feasible: a solver failure (or, for
        # a BaB domain's clamped bounds, an empty domain); never a proof here.
        (log.debug if may_be_empty else log.warning)(
            "MILP reported infeasible: not taken as a proof%s",
            " (the domain may be empty)" if may_be_empty else "")
        return Status.UNKNOWN, None, math.nan
    cand = box.clip(x[xcols]) if x is not None else None
    viol = float(unsafe.violation(problem.forward(cand))) if cand is not None else math.nan
    proven = bound > tol
    found = cand is not None and obj <= 0.0
    if proven and found:
        log.error("MILP inconsistent: bound %.3g > %.3g but incumbent %.3g", bound, tol, obj)
        return Status.UNKNOWN, cand, viol
    if proven:
        return Status.VERIFIED, None, math.nan
    if found:
        return Status.FALSIFIED, cand, viol
    return Status.UNKNOWN, None, math.nan


def milp_check_term(
    chain: Chain, box: Box, unsafe: Halfspaces, bounds: LayerBounds,
    backend: str = "highs", time_limit: float | None = 60.0, tol: float = MILP_TOL,
    may_be_empty: bool = False,
) -> MilpOutcome:
    """Decide whether the term (``box``, ``unsafe``) is reachable; stops early.

    ``may_be_empty``: ``bounds`` are a branch-and-bound domain's (split units clamped),
    so an infeasible model is expected (the domain may hold no input) and is logged at
    debug level; otherwise a solver's infeasible claim is a warning.  Either way it is
    UNKNOWN here, never a proof."""
    return check_term(chain_problem(chain, bounds), box, unsafe, backend, time_limit, tol,
                      may_be_empty)


def check_term(
    problem: MilpProblem, box: Box, unsafe: Halfspaces, backend: str = "highs",
    time_limit: float | None = 60.0, tol: float = MILP_TOL, may_be_empty: bool = False,
) -> MilpOutcome:
    """:func:`milp_check_term` on any :class:`~verinet.milp.problem.MilpProblem` (the
    chain's or the graph's encoding)."""
    out = _solve_violation(problem, box, unsafe, backend, time_limit, tol, True,
                           may_be_empty)
    log.debug("milp term: %s bound=%.6g obj=%.6g (%s, %.2fs)", out.status.value, out.bound,
              out.objective, out.solver_status.value, out.seconds)
    return out


def milp_min_margin(
    chain: Chain, box: Box, unsafe: Halfspaces, bounds: LayerBounds,
    backend: str = "highs", time_limit: float | None = 60.0, tol: float = MILP_TOL,
) -> MilpOutcome:
    """``s* = min_x max_i (A_i f(x) - b_i)`` solved to optimality (no early stop):
    ``bound <= s* <= objective``, ``candidate`` is the minimiser found (whatever its
    value); ``status`` is classified as in :func:`milp_check_term`."""
    out = _solve_violation(chain_problem(chain, bounds), box, unsafe, backend, time_limit,
                           tol, False)
    return out
