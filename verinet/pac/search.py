"""The maximum PAC radius: binary search on a grid, optionally refined continuously.

Grid search (the artifact's): over the integers ``k`` in ``[0, K]`` with
``K = ceil(max_distance / grid)`` (255 for pixels in [0, 1] with ``grid = 1/255``), a
step succeeds only on a PAC-robust verdict; ``k = 0`` (the sample itself, correctly
classified) counts as robust.  The result is the largest ``k * grid`` found robust.  The
verdicts need not be monotone in the radius, so -- as in the artifact -- this is the
radius binary search settles on, robust at the result and not at the next grid point
it tried.  ``continuous`` then bisects between the result and the next grid point until
the bracket is at most ``tolerance`` wide and reports its robust end.

``bracket`` (a Phase 1 method, e.g. ``"lawson"`` under ``phase1="lp"``): the binary search
runs with that cheaper fit, and its result ``k`` is then settled with the problem's own
options by single grid steps -- up while ``k + 1`` is robust, down while ``k`` is not --
so the reported radius is robust at ``k`` and not at ``k + 1`` under the problem's own
Phase 1 (after ``MAX_WALK`` steps the rest is a binary search again).  Every verdict of
either fit is a valid PAC verdict (the guarantee rests on Phase 3 only); the bracket just
spends fewer slow verdicts.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from verinet.pac.result import PacCheck, PacRecord, PacVerdict
from verinet.pac.scenario import PHASE1_METHODS
from verinet.pac.verdict import PacProblem, pac_check
from verinet.types import InputError

log = logging.getLogger(__name__)

MAX_WALK = 3  # settling a bracket: single grid steps before bisecting the rest


@dataclass(frozen=True)
class RadiusSearch:
    """``grid``: step of the grid search (raw input units, 1/255 for pixels);
    ``continuous``: refine between grid points down to ``tolerance``; ``bracket``: the
    Phase 1 method of a first, cheaper binary search (see the module doc)."""

    grid: float = 1.0 / 255.0
    continuous: bool = False
    tolerance: float = 1e-4
    bracket: str | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.grid) and 0 < self.grid <= 1):
            raise InputError(f"the radius grid step must lie in (0, 1], got {self.grid}")
        if not (math.isfinite(self.tolerance) and self.tolerance > 0):
            raise InputError(f"the radius tolerance must be > 0, got {self.tolerance}")
        if self.bracket is not None and self.bracket not in PHASE1_METHODS:
            raise InputError(f"the bracket's Phase 1 must be one of "
                             f"{', '.join(PHASE1_METHODS)}, got {self.bracket!r}")


def pac_radius(problem: PacProblem, search: RadiusSearch, eps: float | None = None
               ) -> PacRecord:
    """The sample's PAC record: the maximum PAC radius (when ``search`` is given) and the
    verdict at ``eps`` (when given)."""
    start = time.monotonic()
    opts = problem.options
    at_eps = None if eps is None else pac_check(problem, eps)
    checks: list[PacCheck] = []

    def robust(r: float, prob: PacProblem = problem) -> bool:
        c = pac_check(prob, r)
        checks.append(c)
        return c.verdict is PacVerdict.ROBUST

    top = max(1, math.ceil(problem.max_distance / search.grid - 1e-9))
    step = search.grid
    if search.bracket is None or search.bracket == opts.phase1:
        lo, hi = _bisect(lambda k: robust(k * step), 0, top + 1)
    else:
        fast = replace(problem, options=replace(opts, phase1=search.bracket))
        k, _ = _bisect(lambda k: robust(k * step, fast), 0, top + 1)
        lo, hi = _settle(lambda k: robust(k * step), k, top)
    grid_radius = lo * search.grid
    radius = grid_radius
    if search.continuous and hi <= top:
        a, b = grid_radius, hi * search.grid
        while b - a > search.tolerance:
            mid_r = 0.5 * (a + b)
            if robust(mid_r):
                a = mid_r
            else:
                b = mid_r
        radius = a
    log.info("PAC radius %.6g (grid %d x %.6g) after %d verdicts in %.1fs", radius, lo,
             search.grid, len(checks), time.monotonic() - start)
    return PacRecord(opts.epsilon, opts.eta, opts.counts(problem.x0.size), opts.phase1_label,
                     opts.seed, radius, search.grid, grid_radius, search.continuous,
                     search.tolerance if search.continuous else None, at_eps, tuple(checks),
                     time.monotonic() - start)


def _bisect(robust: Callable[[int], bool], lo: int, hi: int) -> tuple[int, int]:
    """Binary search: ``lo`` robust (or 0), ``hi`` not (or beyond the grid)."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if robust(mid):
            lo = mid
        else:
            hi = mid
    return lo, hi


def _settle(robust: Callable[[int], bool], k: int, top: int) -> tuple[int, int]:
    """From a bracket's result ``k``: single grid steps, then bisection (module doc)."""
    if k > 0 and not robust(k):
        hi = k
        for _ in range(MAX_WALK):
            if hi - 1 == 0 or robust(hi - 1):
                return hi - 1, hi
            hi -= 1
        return _bisect(robust, 0, hi)
    lo = k
    for _ in range(MAX_WALK):
        if lo >= top or not robust(lo + 1):
            return lo, lo + 1
        lo += 1
    return _bisect(robust, lo, top + 1)


def pac_at(problem: PacProblem, eps: float) -> PacRecord:
    """Only the verdict at ``eps`` (no radius search)."""
    start = time.monotonic()
    opts = problem.options
    check = pac_check(problem, eps)
    return PacRecord(opts.epsilon, opts.eta, opts.counts(problem.x0.size), opts.phase1_label,
                     opts.seed, at_eps=check, seconds=time.monotonic() - start)
