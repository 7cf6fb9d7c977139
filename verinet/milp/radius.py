"""The exact minimal L-inf adversarial distortion of one sample by MILP.

For a sample ``x0`` with label ``l`` and a ball radius ``R`` known to contain an
adversarial example (an attack's distance), per target class ``j != l`` we solve::

    min t   s.t.  |x - x0|_inf <= t,  x in B(x0, R) ∩ domain,  y = f(x),  y_j - y_l >= 0

on the MIPVerify encoding of ``f`` over ``B(x0, R) ∩ domain`` (big-M from the sound
``LayerBounds`` given, which must hold on that box).  The radius is ``min_j t_j``; ties
count as misclassified, so the minimum is attained.

What is checked and what is trusted: each class's lower bound is the solver's proven
dual bound (HiGHS, ``mip_rel_gap=0``), lowered by the backend's ``value_tol`` as in
:mod:`verinet.milp.solve`; a class the solver calls infeasible is *not* taken as
unreachable: the class is re-solved as ``max y_j - y_l`` over the box and counts as
unreachable (``t_j > R``) only when that dual bound is negative; otherwise it keeps the
lower bound the caller proved by other means (``floor``).
Classes whose margin is proven positive on the whole box (``skip``) have ``t_j > R``.
The incumbent ``x`` is a *candidate*: the caller replays it on the real network.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from verinet.bounds.interval import LayerBounds
from verinet.ir.chain import Chain
from verinet.milp.backend import MilpBackend, SolverStatus, make_backend
from verinet.milp.problem import MilpProblem, chain_problem
from verinet.types import Box, InputError, linf_reach

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RadiusOutcome:
    """``lower <= radius``; ``objective``/``candidate``: the best incumbent found (``nan``
    / None without one); ``optimal``: every class was solved to optimality or skipped;
    ``solver_errors``: classes whose solve ended in a solver error (their floor kept)."""

    lower: float
    objective: float
    candidate: np.ndarray | None
    target: int
    optimal: bool
    seconds: float
    n_binaries: int
    classes_solved: int
    solver_errors: int = 0


def _rows(n: int, xcols: np.ndarray, t: int, ncols: int) -> sp.csr_matrix:
    """Rows ``x_i - t`` (first n) and ``x_i + t`` (last n)."""
    r = np.arange(2 * n)
    cols = np.concatenate([xcols, xcols, np.full(n, t), np.full(n, t)])
    rows = np.concatenate([r[:n], r[n:], r[:n], r[n:]])
    vals = np.concatenate([np.ones(2 * n), -np.ones(n), np.ones(n)])
    return sp.csr_matrix((vals, (rows, cols)), shape=(2 * n, ncols))


def _margin_vars(be: MilpBackend, outputs: np.ndarray, label: int) -> np.ndarray:
    """Free variables ``d_j = y_j - y_l`` (``d_l`` is unused and stays free)."""
    m = outputs.size
    d = be.add_vars(np.full(m, -np.inf), np.full(m, np.inf))
    rows = np.concatenate([np.arange(m)] * 3)
    cols = np.concatenate([d, outputs, np.full(m, outputs[label])])
    vals = np.concatenate([np.ones(m), -np.ones(m), np.ones(m)])
    coeffs = sp.csr_matrix((vals, (rows, cols)), shape=(m, be.num_vars))
    be.add_rows(coeffs, np.zeros(m), np.zeros(m))
    return d


def _unreachable(be: MilpBackend, d: np.ndarray, j: int, t: int, left: float) -> bool:
    """Whether ``d_j = y_j - y_l < 0`` on the whole box, from the proven dual bound of
    ``min -d_j`` (lowered by the backend's tolerance, as every bound here).  Restores the
    objective ``min t``."""
    if left <= 0.05:
        return False
    be.set_var_bounds(d, np.full(d.size, -np.inf), np.full(d.size, np.inf))
    be.set_objective([d[j]], [-1.0])
    be.set_time_limit(left)
    be.set_stop(proved_above=0.0)
    res = be.solve()
    be.set_objective([t], [1.0])
    lo = res.best_bound
    if not math.isfinite(lo) or res.status is SolverStatus.ERROR:
        return False
    return lo - (be.value_tol[0] + be.value_tol[1] * abs(lo)) > 0.0


def milp_radius(
    chain: Chain,
    x0: np.ndarray,
    label: int,
    box: Box,
    bounds: LayerBounds,
    order: list[int],
    floor: float,
    time_limit: float,
    backend: str = "highs",
) -> RadiusOutcome:
    """Minimal L-inf distortion over ``box`` (= ``B(x0, R) ∩ domain``) for the target
    classes in ``order`` (the others are known to be unreachable in the box).

    ``floor`` is a lower bound on the radius proven by the caller (used for classes the
    solver cannot bound); ``time_limit`` covers all classes together.
    """
    return radius_of(chain_problem(chain, bounds), x0, label, box, order, floor, time_limit,
                     backend)


def radius_of(
    problem: MilpProblem,
    x0: np.ndarray,
    label: int,
    box: Box,
    order: list[int],
    floor: float,
    time_limit: float,
    backend: str = "highs",
) -> RadiusOutcome:
    """:func:`milp_radius` on any :class:`~verinet.milp.problem.MilpProblem` (the chain's
    or the graph's encoding, with bounds sound on ``box``)."""
    t0 = time.monotonic()
    x0 = np.asarray(x0, dtype=np.float64).reshape(-1)
    if box.dim != x0.size or x0.size != problem.n_inputs:
        raise InputError(f"sample has {x0.size} inputs, box {box.dim}, the network "
                         f"{problem.n_inputs}")
    R = linf_reach(x0, box.lower, box.upper)
    be = make_backend(backend)
    enc = problem.encode(be, box)
    t = int(be.add_vars([0.0], [R])[0])
    n = x0.size
    be.add_rows(_rows(n, enc.x, t, be.num_vars),
                np.concatenate([np.full(n, -np.inf), x0]),
                np.concatenate([x0, np.full(n, np.inf)]))
    d = _margin_vars(be, enc.outputs, label)
    be.set_objective([t], [1.0])
    best, best_x, target = math.inf, None, -1
    lowers: list[float] = []
    optimal = True
    solved = errors = 0
    for j in order:
        left = time_limit - (time.monotonic() - t0)
        if left <= 0.05:
            optimal = False
            lowers.append(floor)
            continue
        be.set_var_bounds(d, np.full(d.size, -np.inf), np.full(d.size, np.inf))
        be.set_var_bounds([d[j]], [0.0], [np.inf])
        be.set_time_limit(left)
        be.set_stop(proved_above=best if math.isfinite(best) else None)
        res = be.solve()
        solved += 1
        if res.status is SolverStatus.INFEASIBLE:
            # Often true: a class not proven unreachable by the bounds may still be.  Not
            # trusted as such; the dual bound of max d_j over the box decides.
            if _unreachable(be, d, j, t, time_limit - (time.monotonic() - t0)):
                log.debug("radius MILP class %d: unreachable in the box (t > %.6g)", j, R)
                lowers.append(R)
                continue
        if res.status is SolverStatus.INFEASIBLE or res.status is SolverStatus.ERROR:
            log.warning("radius MILP class %d: %s (%s); keeping the floor %.6g", j,
                        res.status.value, res.message or "no message", floor)
            errors += res.status is SolverStatus.ERROR
            lowers.append(floor)
            optimal = False
            continue
        lo = res.best_bound
        if math.isfinite(lo):
            lo -= be.value_tol[0] + be.value_tol[1] * abs(lo)
        lowers.append(max(lo, floor))
        stopped_above = res.status is SolverStatus.STOPPED and lo >= best - 1e-12
        if res.status is not SolverStatus.OPTIMAL and not stopped_above:
            optimal = False
        if res.x is not None and res.objective < best:
            best, best_x, target = float(res.objective), box.clip(res.x[enc.x]), j
        log.debug("radius MILP class %d: %s t in [%.6g, %.6g] (%.2fs)", j, res.status.value,
                  lo, res.objective, res.seconds)
    lower = min(lowers) if lowers else R
    return RadiusOutcome(lower, best, best_x, target, optimal, time.monotonic() - t0,
                         enc.n_binaries, solved, errors)
