"""The maximum PAC radius: binary search on a grid, optionally refined continuously.

Grid search (the artifact's): over the integers ``k`` in ``[0, K]`` with
``K = ceil(max_distance / grid)`` (255 for pixels in [0, 1] with ``grid = 1/255``), a
step succeeds only on a PAC-robust verdict; ``k = 0`` (the sample itself, correctly
classified) counts as robust.  The result is the largest ``k * grid`` found robust.  The
verdicts need not be monotone in the radius, so -- as in the artifact -- this is the
radius binary search settles on, robust at the result and not at the next grid point
it tried.  ``continuous`` then bisects between the result and the next grid point until
the bracket is at most ``tolerance`` wide and reports its robust end.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from verinet.pac.result import PacCheck, PacRecord, PacVerdict
from verinet.pac.verdict import PacProblem, pac_check
from verinet.types import InputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RadiusSearch:
    """``grid``: step of the grid search (raw input units, 1/255 for pixels);
    ``continuous``: refine between grid points down to ``tolerance``."""

    grid: float = 1.0 / 255.0
    continuous: bool = False
    tolerance: float = 1e-4

    def __post_init__(self) -> None:
        if not (math.isfinite(self.grid) and 0 < self.grid <= 1):
            raise InputError(f"the radius grid step must lie in (0, 1], got {self.grid}")
        if not (math.isfinite(self.tolerance) and self.tolerance > 0):
            raise InputError(f"the radius tolerance must be > 0, got {self.tolerance}")


def pac_radius(problem: PacProblem, search: RadiusSearch, eps: float | None = None
               ) -> PacRecord:
    """The sample's PAC record: the maximum PAC radius (when ``search`` is given) and the
    verdict at ``eps`` (when given)."""
    start = time.monotonic()
    opts = problem.options
    at_eps = None if eps is None else pac_check(problem, eps)
    checks: list[PacCheck] = []

    def robust(r: float) -> bool:
        c = pac_check(problem, r)
        checks.append(c)
        return c.verdict is PacVerdict.ROBUST

    top = max(1, math.ceil(problem.max_distance / search.grid - 1e-9))
    lo, hi = 0, top + 1  # lo: robust (k = 0: the clean sample); hi: not (or beyond)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if robust(mid * search.grid):
            lo = mid
        else:
            hi = mid
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


def pac_at(problem: PacProblem, eps: float) -> PacRecord:
    """Only the verdict at ``eps`` (no radius search)."""
    start = time.monotonic()
    opts = problem.options
    check = pac_check(problem, eps)
    return PacRecord(opts.epsilon, opts.eta, opts.counts(problem.x0.size), opts.phase1_label,
                     opts.seed, at_eps=check, seconds=time.monotonic() - start)
