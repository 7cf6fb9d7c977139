"""Layer-by-layer bound tightening with LP or MILP solves (MIPVerify style).

For affine layer ``k`` the model holds the encoding of layers ``< k`` (built with the
bounds tightened so far) plus the variables ``z_k``.  For each still-unstable ReLU input
``z_kj`` we minimise ``-z_kj`` (upper bound) and, unless that proves ``z_kj <= 0``,
``z_kj`` (lower bound), over the LP relaxation (``Tightening.LP``) or the MILP with a
per-solve time limit (``Tightening.MILP``).  One solver model is reused: only the
objective (and the bounds just tightened) change between solves, so HiGHS warm-starts
the simplex from the previous basis, and new layers are appended to the same model.
Where a cold start with presolve is measured to be faster (dense objectives such as the
outputs) the basis is dropped instead (:class:`_StartChooser`).

Soundness:
* LP solves with row duals (HiGHS) are certified by
  :func:`verinet.milp.certify.safe_lower_bound`: no solver value is trusted.
* Otherwise (MILP solves, CBC) the solver's proven bound is trusted up to its tolerances
  and widened by ``TIGHTEN_ABS + TIGHTEN_REL * |v|`` (plus the backend's ``value_tol``),
  because solutions are only feasible to the solver's tolerances.
* On a time limit only the proven (dual) bound is used, never the incumbent.
* Results are intersected with the input bounds; NaN / infeasible answers keep the
  previous bound (with sound input bounds the relaxation is never empty).
"""

from __future__ import annotations

import enum
import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from verinet.bounds.interval import LayerBounds, affine_interval
from verinet.ir.chain import Chain
from verinet.milp.backend import MilpBackend, SolverStatus, make_backend
from verinet.milp.certify import safe_lower_bound
from verinet.milp.encode import add_affine, add_input, add_relu, check_bounds, check_relu_chain
from verinet.types import Box, SoundnessError

log = logging.getLogger(__name__)

TIGHTEN_ABS = 1e-7
TIGHTEN_REL = 1e-9
CROSS_TOL = 1e-6  # lower > upper by more than this (relative to 1+|v|) is a bug


class Tightening(enum.Enum):
    INTERVAL = "interval"  # interval propagation through the given bounds, no solver
    LP = "lp"              # LP relaxation of the layers before (triangle relaxation)
    MILP = "milp"          # exact MILP of the layers before, per-solve time limit


class _StartChooser:
    """Warm or cold start?  Warm starts win when consecutive objectives are alike
    (hidden units); for dense objectives (outputs) a cold start with presolve can be
    several times faster.  Compares the medians of the recent solve times of both modes
    (robust to single slow solves) and probes the other mode now and then when the
    estimates are close."""

    PROBE_EVERY = 32
    PROBE_RATIO = 3.0  # never probe a mode estimated this much slower
    WINDOW = 7

    def __init__(self) -> None:
        self.times: dict[bool, deque[float]] = {True: deque(maxlen=self.WINDOW),
                                                False: deque(maxlen=self.WINDOW)}
        self.count = 0

    def choose(self) -> bool:
        self.count += 1
        warm, cold = self.times[True], self.times[False]
        if not warm or not cold:
            return not warm
        w, c = float(np.median(warm)), float(np.median(cold))
        probe = self.count % self.PROBE_EVERY == 0 and max(w, c) < self.PROBE_RATIO * min(w, c)
        return (w <= c) != probe

    def record(self, warm: bool, seconds: float) -> None:
        self.times[warm].append(seconds)

    def new_layer(self) -> None:
        self.times[True].clear()
        self.count = 0


@dataclass
class SolveCtx:
    """One tightening run: the solver model built so far, the method, the per-solve and
    overall time limits, and the warm/cold start choice (shared with the graph's)."""

    backend: MilpBackend
    method: Tightening
    per_solve: float
    deadline: float
    solves: int = 0
    starts: _StartChooser = field(default_factory=_StartChooser)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()


def tighten_bounds(
    chain: Chain,
    box: Box,
    bounds: LayerBounds,
    method: Tightening = Tightening.LP,
    backend: str = "highs",
    time_budget: float | None = None,
    per_solve_time: float = 10.0,
    tighten_output: bool = False,
) -> LayerBounds:
    """Tighter sound bounds than ``bounds`` (which must be sound for ``box``).

    ``time_budget`` bounds the whole call (units not reached keep their bounds, later
    layers still get interval propagation); ``per_solve_time`` limits each MILP solve.
    ``tighten_output`` also tightens the last affine layer (the network outputs).
    """
    check_relu_chain(chain)
    check_bounds(chain, bounds)
    lows = [np.array(v, dtype=np.float64) for v in bounds.lower]
    highs = [np.array(v, dtype=np.float64) for v in bounds.upper]
    affines = chain.affines
    for k in range(1, len(affines)):
        _interval_step(chain, k, lows, highs)
    if method is Tightening.INTERVAL:
        return LayerBounds(tuple(lows), tuple(highs), "interval")
    t0 = time.monotonic()
    budget = math.inf if time_budget is None else float(time_budget)
    ctx = SolveCtx(make_backend(backend), method, float(per_solve_time), t0 + budget)
    h = add_input(ctx.backend, box)
    for k, layer in enumerate(affines):
        if k > 0:
            _interval_step(chain, k, lows, highs)
        z = add_affine(ctx.backend, layer, h, lows[k], highs[k])
        last = k == len(affines) - 1
        if k > 0 and (tighten_output or not last):
            _tighten_layer(ctx, z, lows[k], highs[k], relu=not last)
        if not last:
            h, _ = add_relu(ctx.backend, z, lows[k], highs[k])
    log.info("%s tightening: %d solves in %.2fs", method.value, ctx.solves, time.monotonic() - t0)
    return LayerBounds(tuple(lows), tuple(highs), method.value)


def _interval_step(chain: Chain, k: int, lows: list[np.ndarray], highs: list[np.ndarray]) -> None:
    """Intersect layer ``k``'s bounds with interval propagation from layer ``k - 1``."""
    lo, hi = affine_interval(chain.affines[k], np.maximum(lows[k - 1], 0.0),
                             np.maximum(highs[k - 1], 0.0))
    intersect(lows[k], highs[k], np.arange(lo.size), lo, hi)


def intersect(lows: np.ndarray, highs: np.ndarray, idx: np.ndarray,
               lo: np.ndarray, hi: np.ndarray) -> None:
    """In-place intersection; NaN candidates are ignored; a crossing within ``CROSS_TOL``
    (rounding) is resolved by swapping the ends, a larger one is a soundness bug."""
    new_lo = np.where(np.isnan(lo), lows[idx], np.maximum(lows[idx], lo))
    new_hi = np.where(np.isnan(hi), highs[idx], np.minimum(highs[idx], hi))
    cross = new_lo > new_hi
    if cross.any():
        gap = (new_lo - new_hi)[cross]
        scale = 1.0 + np.maximum(np.abs(new_lo[cross]), np.abs(new_hi[cross]))
        if (gap > CROSS_TOL * scale).any():
            raise SoundnessError(f"tightened bounds cross by {float(gap.max()):.3g}")
        a, b = new_lo[cross], new_hi[cross]
        new_lo[cross], new_hi[cross] = np.minimum(a, b), np.maximum(a, b)
    lows[idx], highs[idx] = new_lo, new_hi


def _tighten_layer(ctx: SolveCtx, z: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                   relu: bool) -> None:
    """Tighten ``lo``/``hi`` in place for the unstable (or, if not ``relu``, all) units."""
    units = np.flatnonzero((lo < 0) & (hi > 0)) if relu else np.arange(z.size)
    tighten_units(ctx, z, lo, hi, units, phased=relu)


def tighten_units(ctx: SolveCtx, cols: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                  units: np.ndarray, phased: bool) -> None:
    """Tighten ``lo``/``hi`` (bounds of the variables ``cols``) in place for ``units``, in
    order, until the time is spent.  ``phased``: the unit feeds a ReLU-like node, so each
    solve stops once the sign is proven and a unit proven ``<= 0`` needs no lower bound."""
    stop = 0.0 if phased else None
    ctx.starts.new_layer()
    for j in units:
        if ctx.remaining() <= 0:
            log.info("tightening time budget spent; remaining units keep their bounds")
            return
        col = int(cols[j])
        upper = -min_value(ctx, col, -1.0, stop_at=stop)
        intersect(lo, hi, np.array([j]), np.array([-np.inf]), np.array([upper]))
        if not (phased and hi[j] <= 0):
            lower = min_value(ctx, col, 1.0, stop_at=stop)
            intersect(lo, hi, np.array([j]), np.array([lower]), np.array([np.inf]))
        ctx.backend.set_var_bounds([col], lo[j], hi[j])


def min_value(ctx: SolveCtx, col: int, sign: float, stop_at: float | None) -> float:
    """A sound lower bound on ``min sign * x[col]`` (``-inf`` if nothing is proven)."""
    be = ctx.backend
    be.set_objective([col], [sign])
    limit = ctx.remaining() if ctx.method is Tightening.LP else min(ctx.per_solve,
                                                                     ctx.remaining())
    be.set_time_limit(max(limit, 1e-3) if math.isfinite(limit) else None)
    be.set_stop(proved_above=stop_at)
    warm = ctx.starts.choose() if ctx.solves else False
    res = be.solve(relax=ctx.method is Tightening.LP, warm=warm)
    ctx.starts.record(warm, res.seconds)
    ctx.solves += 1
    if res.status in (SolverStatus.INFEASIBLE, SolverStatus.UNBOUNDED, SolverStatus.ERROR):
        log.warning("tightening solve for column %d: %s; keeping the bound", col, res.message)
        return -math.inf
    if res.row_duals is not None:
        value = safe_lower_bound(be.model(), res.row_duals)
        if math.isfinite(res.best_bound) and value < res.best_bound - 1e-6 * (
                1.0 + abs(res.best_bound)):
            log.debug("certified bound %.9g well below LP value %.9g", value, res.best_bound)
        return value
    value = res.best_bound
    if math.isnan(value) or not math.isfinite(value):
        return -math.inf
    abs_tol = TIGHTEN_ABS + be.value_tol[0]
    rel_tol = TIGHTEN_REL + be.value_tol[1]
    return value - (abs_tol + rel_tol * abs(value))
