"""A certified radius from local Lipschitz bounds: ``r >= min_j margin_j(x0) / L_j``.

For the margins ``g_j = f_label - f_j`` and a ball ``B(x0, e) ∩ domain``, let ``L_j(e)``
bound ``||grad g_j||_*`` on the ball (:mod:`.jacobian`; ``*`` the dual of the
perturbation norm) and ``m_j`` bound ``g_j(x0)`` from below (CROWN on the point box,
sound in floating point).  For every ``x`` of ``B(x0, r) ∩ domain`` with ``r <= e`` the
segment from ``x0`` stays in the ball (it is convex), so ``g_j(x) >= m_j - L_j(e) r``:
no adversarial example (ties counted) lies closer than ``rho(e) = min(e, min_j m_j /
L_j(e))``.  Every ``e`` tried gives a certified radius ``rho(e)``; the search keeps the
largest.

The search: rounds of a batched grid of ``e`` (all balls of a round are one batch of
boxes), each refining between the largest ``e`` with ``rho(e) = e`` and the next; then a
short fixed-point climb ``e <- min_j m_j / L_j(e)`` from the best ball, which increases
while the bound at the new ball still covers it.  The ball of the L2 norm is bounded
through the L-inf box around it (sound, looser).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from verinet.bounds.graph import GraphModel, graph_crown
from verinet.certify.crown_radius import margin_rows, refine_grid
from verinet.lipschitz.jacobian import NORMS, jacobian_bounds
from verinet.types import Guarantee, InputError, linf_ball_bounds, linf_reach
from verinet.verify.deadline import Deadline

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LipschitzRadius:
    """``radius``: the certified lower bound on the robustness radius in ``norm`` (sound);
    ``ball``: the ball radius ``e`` whose local constants gave it; ``constants`` (m-1,)
    the local Lipschitz bounds of the margins on that ball and ``margins`` the sound lower
    bounds of the margins at ``x0`` (classes in order, the label left out)."""

    radius: float
    ball: float
    constants: tuple[float, ...]
    margins: tuple[float, ...]
    norm: str = "linf"
    evaluations: int = 0
    guarantee: Guarantee = Guarantee.SOUND


def reach(x0: np.ndarray, domain: tuple[np.ndarray, np.ndarray], norm: str) -> float:
    """The largest ``norm`` distance of a point of the domain from ``x0``."""
    if norm == "linf":
        return linf_reach(x0, *domain)
    far = np.maximum(x0 - domain[0], domain[1] - x0)
    return float(np.sqrt(np.sum(np.square(far))))


def point_margins(gm: GraphModel, x0: np.ndarray, label: int) -> np.ndarray:
    """Sound lower bounds of ``f_label(x0) - f_j(x0)`` (CROWN on the point box)."""
    x = np.asarray(x0, dtype=np.float64).reshape(1, -1)
    return graph_crown(gm, x, x, margin_rows(label, gm.network.n_outputs)).lower[0]


def radii(gm: GraphModel, x0: np.ndarray, label: int, balls: np.ndarray,
          domain: tuple[np.ndarray, np.ndarray], margins: np.ndarray,
          norm: str = "linf") -> tuple[np.ndarray, np.ndarray]:
    """``rho(e)`` for every ball radius in ``balls`` (one batch), and the (B, m-1) local
    constants."""
    balls = np.asarray(balls, dtype=np.float64).reshape(-1)
    lo, hi = linf_ball_bounds(np.asarray(x0, dtype=np.float64).reshape(-1), balls, *domain)
    L = jacobian_bounds(gm, lo, hi, margin_rows(label, gm.network.n_outputs)).dual_norms(norm)
    with np.errstate(divide="ignore"):
        ratio = np.where(L > 0, margins[None, :] / np.where(L > 0, L, 1.0), math.inf)
    return np.minimum(balls, ratio.min(axis=1)), L


def lipschitz_radius(gm: GraphModel, x0: np.ndarray, label: int, upper: float,
                     domain: tuple[np.ndarray, np.ndarray], norm: str = "linf",
                     rounds: int = 3, grid: int = 8, climb: int = 4,
                     deadline: Deadline | None = None) -> LipschitzRadius:
    """The largest ``rho(e)`` over the search of the module doc, ``e <= upper`` (``inf``:
    up to the domain's reach).  0.0 when ``x0`` is not classified ``label`` with a
    proven margin."""
    if norm not in NORMS[:2]:
        raise InputError(f"the Lipschitz radius is for linf or l2 balls, got {norm!r}")
    x0 = np.asarray(x0, dtype=np.float64).reshape(-1)
    m = point_margins(gm, x0, label)
    none = LipschitzRadius(0.0, 0.0, (), tuple(float(v) for v in m), norm)
    if not (m > 0).all():
        return none
    top = float(upper) if math.isfinite(upper) else reach(x0, domain, norm)
    best = none
    evals = 0

    def take(balls: np.ndarray) -> np.ndarray:
        nonlocal best, evals
        rho, L = radii(gm, x0, label, balls, domain, m, norm)
        evals += len(balls)
        k = int(np.argmax(rho))
        if rho[k] > best.radius:
            best = LipschitzRadius(float(rho[k]), float(balls[k]),
                                   tuple(float(v) for v in L[k]), tuple(float(v) for v in m),
                                   norm)
        return rho

    refine_grid(lambda balls: take(balls) >= balls, top, rounds, grid, deadline)
    e = best.radius
    for _ in range(climb):  # e <- min_j m_j / L_j(e), while it grows
        if deadline is not None and deadline.expired() or e <= 0:
            break
        nxt = float(min(m[j] / best.constants[j] if best.constants[j] > 0 else math.inf
                        for j in range(m.size)))
        if not nxt > e * (1 + 1e-9) or not math.isfinite(nxt):
            break
        before = best.radius
        take(np.array([min(nxt, top)]))
        if best.radius <= before:
            break
        e = best.radius
    log.debug("Lipschitz radius: %.6g (ball %.6g, %d balls)", best.radius, best.ball, evals)
    return LipschitzRadius(best.radius, best.ball, best.constants, best.margins, norm, evals)
