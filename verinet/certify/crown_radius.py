"""A fast certified lower bound on the L-inf radius: CROWN on a grid of balls.

All balls of one round form one batch of boxes (``crown_bounds`` is batched over boxes),
so a round costs about one CROWN pass; each round refines the grid between the largest
certified radius and the smallest uncertified one.  CROWN is monotone in the box only
approximately (intermediate bounds differ per box), so a round keeps the *largest*
certified radius of its grid, which is sound whatever the others say.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np

from verinet.bounds.crown import crown_bounds
from verinet.bounds.graph import GraphModel, graph_crown
from verinet.ir.chain import Chain
from verinet.types import linf_ball_bounds, linf_reach
from verinet.verify.deadline import Deadline

log = logging.getLogger(__name__)


def margin_rows(label: int, n_classes: int) -> np.ndarray:
    """``C`` with rows ``e_label - e_j`` for every ``j != label`` ((m-1, m))."""
    others = [j for j in range(n_classes) if j != label]
    C = np.zeros((len(others), n_classes))
    C[:, label] = 1.0
    C[np.arange(len(others)), others] = -1.0
    return C


def certified_margins(engine: GraphModel | Chain, x0: np.ndarray, label: int, eps: np.ndarray,
                      domain: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """(B, m-1) sound lower bounds of ``y_label - y_j`` on each ball (columns in class
    order without ``label``), by CROWN on the graph (or on a chain)."""
    lo, hi = linf_ball_bounds(x0, np.asarray(eps, dtype=np.float64).reshape(-1), *domain)
    if isinstance(engine, GraphModel):
        return graph_crown(engine, lo, hi, margin_rows(label, engine.network.n_outputs)).lower
    return crown_bounds(engine, lo, hi, margin_rows(label, engine.n_outputs)).lower


def crown_radius(
    engine: GraphModel | Chain,
    x0: np.ndarray,
    label: int,
    upper: float,
    domain: tuple[np.ndarray, np.ndarray],
    rounds: int = 3,
    grid: int = 16,
    deadline: Deadline | None = None,
) -> float:
    """The largest ``eps <= upper`` of the grids at which CROWN proves every margin
    positive on ``B(x0, eps) ∩ domain`` (0.0 if none): the true radius exceeds it."""
    x0 = np.asarray(x0, dtype=np.float64).reshape(-1)
    hi_eps = float(upper)
    if not np.isfinite(hi_eps):
        hi_eps = linf_reach(x0, *domain)

    def proven(eps: np.ndarray) -> np.ndarray:
        return (certified_margins(engine, x0, label, eps, domain) > 0).all(axis=1)

    lo_eps, hi_eps = refine_grid(proven, hi_eps, rounds, grid, deadline)
    log.debug("CROWN radius: %.6g (gap to %.6g)", lo_eps, hi_eps)
    return lo_eps


def refine_grid(proven: Callable[[np.ndarray], np.ndarray], top: float, rounds: int,
                grid: int, deadline: Deadline | None = None) -> tuple[float, float]:
    """Rounds of a grid of ``grid`` radii in ``(lo, hi]`` (first ``(0, top]``), each
    evaluated in one batch by ``proven`` (a mask); a round moves ``lo`` to the largest
    proven radius and ``hi`` to the next one.  With a ``deadline``, a round starts only
    when the previous one's time still fits in it (the first always runs).  Returns
    ``(lo, hi)``."""
    lo_eps, hi_eps = 0.0, float(top)
    last = 0.0  # seconds of the previous round
    for _ in range(rounds):
        # a round is one batch: start it only when one like the last still fits
        if deadline is not None and (deadline.expired() or last > deadline.remaining()):
            break
        t0 = time.monotonic()
        eps = np.linspace(lo_eps, hi_eps, grid + 1)[1:]
        ok = proven(eps)
        last = time.monotonic() - t0
        if ok.any():
            k = int(np.flatnonzero(ok).max())
            lo_eps = float(eps[k])
            if k == eps.size - 1:
                break
            hi_eps = float(eps[k + 1])
        else:
            hi_eps = float(eps[0])
    return lo_eps, hi_eps
