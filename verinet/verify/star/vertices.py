"""Vertex sets of a star's input polytope, and bounds certified from them.

A star's polytope ``P = {x in [lo, hi] : G x <= h}`` lives in the network's input space;
for ACAS Xu that is 5-dimensional with a few dozen rows, and ``P`` has a few dozen to a
few hundred vertices (Qhull computes them in about 0.3 ms).  With the vertices at hand,
``min_{x in P} L_r . x`` for *every* row of a matrix ``L`` is one matrix product, where an
LP per row costs about 0.1 ms.  That is what lets the star search bound every later
layer's neurons over ``P`` itself rather than over its bounding box (far fewer stars).

**What is trusted: nothing.**  The vertices are only used to pick, for each row, the
vertex ``v`` minimising it and the ``d`` halfspaces Qhull says meet at ``v``.  Solving
``L_r + sum_{i in S} mu_i a_i = 0`` on that active set gives multipliers for the split
rows; negative ones are clipped to 0 and weak duality

    min_{x in P} L_r . x  >=  min_{x in box} (L_r + G^T mu) . x - mu . h      (mu >= 0)

is evaluated exactly over the box, then lowered by the float64 rounding slack
(:data:`verinet.bounds.fp.FLOAT64`).  Wrong vertices or a degenerate active set only make the
bound weaker (at worst the box bound, which is always included), never unsound.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from verinet.bounds.fp import FLOAT64

log = logging.getLogger(__name__)

#: Vertex sets are used up to this many free input coordinates.  Measured (box cut by 10
#: / 30 random rows): 5 dims 120 / 170 vertices in ~0.3 / 1.7 ms, 6 dims 273 / 550 in 2.4 /
#: 5.8 ms, 8 dims 1,681 / 2,822 in 12 / 37 ms, where an LP costs ~0.1 ms.
MAX_DIM = 6


@dataclass(frozen=True)
class Vertices:
    """``pts`` (V, d): the vertices Qhull found; ``Q`` (V, m, d): ``Q[v] @ L`` are the
    split-row multipliers certifying the minimum of ``L . x`` at vertex ``v``."""

    pts: np.ndarray
    Q: np.ndarray


def vertex_set(G: np.ndarray, h: np.ndarray, lo: np.ndarray, hi: np.ndarray,
               inner: np.ndarray) -> Vertices | None:
    """The vertices of ``{x in [lo, hi] : G x <= h}`` given a strictly interior point, or
    None when Qhull cannot build them (a flat or numerically degenerate polytope, or a
    point that is not strictly interior): callers then fall back to LPs."""
    from scipy.spatial import HalfspaceIntersection, QhullError

    m, d = G.shape
    free = hi > lo
    f = int(free.sum())
    if f < 2 or f > MAX_DIM:  # Qhull needs 2 dimensions; past MAX_DIM LPs are cheaper
        return None
    # Fixed coordinates (lo == hi) are substituted: Qhull works in the free ones.
    hr = h - G[:, ~free] @ lo[~free]
    Gf = G[:, free]
    eye = np.eye(f)
    A = np.vstack([Gf, eye, -eye])
    b = np.concatenate([hr, hi[free], -lo[free]])
    x0 = inner[free]
    slack = b - A @ x0
    if not (slack > 1e-9 * (1.0 + np.abs(b))).all():
        return None
    try:
        hs = HalfspaceIntersection(np.hstack([A, -b[:, None]]), x0)
    except (QhullError, ValueError) as e:
        log.debug("vertex set: qhull failed (%s)", str(e).splitlines()[0] if str(e) else e)
        return None
    pf = np.asarray(hs.intersections, dtype=np.float64)
    facets = np.asarray(hs.dual_facets, dtype=np.int64)
    if pf.ndim != 2 or facets.shape != (pf.shape[0], f) or not np.isfinite(pf).all():
        return None
    V = pf.shape[0]
    pts = np.repeat(lo[None, :], V, axis=0)
    pts[:, free] = pf
    # mu_S = -(A_S^T)^+ L_free on each vertex's active set S; keep the split-row part.
    AS = A[facets]                                    # (V, f, f): rows a_i, i in S
    AT = np.transpose(AS, (0, 2, 1))
    try:
        P = np.linalg.inv(AT)                         # (V, f, f)
    except np.linalg.LinAlgError:  # a singular active set somewhere: least squares
        P = np.linalg.pinv(AT)
    if not np.isfinite(P).all():
        return None
    Qf = np.zeros((V, m + 1, f))                      # row m collects the box faces
    rows = np.where(facets < m, facets, m)
    np.add.at(Qf, (np.repeat(np.arange(V), f), rows.ravel()), -P.reshape(V * f, f))
    Q = np.zeros((V, m, d))
    Q[:, :, free] = Qf[:, :m, :]
    return Vertices(pts, Q)


class PolyBounds:
    """Certified lower bounds of linear functions over ``P = {x in [lo, hi] : G x <= h}``
    from its vertex set (the box alone when ``vs`` is None)."""

    def __init__(self, vs: Vertices | None, G: np.ndarray, h: np.ndarray, lo: np.ndarray,
                 hi: np.ndarray) -> None:
        self.vs, self.G, self.h, self.lo, self.hi = vs, G, h, lo, hi
        self.pts = None if vs is None else vs.pts
        self.xmax = np.maximum(np.abs(lo), np.abs(hi))
        self.row_mag = np.abs(G) @ self.xmax + np.abs(h)

    def lower(self, L: np.ndarray) -> np.ndarray:
        """Sound lower bounds (R,) of ``min_{x in P} L_r . x`` for the rows of ``L``
        (R, d): the better of the box bound and the vertex certificate."""
        L = np.atleast_2d(np.asarray(L, dtype=np.float64))
        lo, hi, xmax = self.lo, self.hi, self.xmax
        absL = np.abs(L) @ xmax
        box = np.minimum(L * lo, L * hi).sum(axis=1) - FLOAT64(1.0) - FLOAT64.rel * absL
        if self.vs is None or self.G.shape[0] == 0:
            return box
        idx = np.argmin(L @ self.vs.pts.T, axis=1)
        mu = np.maximum(np.einsum("rmd,rd->rm", self.vs.Q[idx], L), 0.0)
        r = L + mu @ self.G
        val = np.minimum(r * lo, r * hi).sum(axis=1) - mu @ self.h
        mag = np.abs(r) @ xmax + absL + mu @ self.row_mag
        return np.maximum(box, val - FLOAT64(1.0) - FLOAT64.rel * mag)


def inner_point(pts: np.ndarray | None, inner: np.ndarray, a: np.ndarray,
                beta: float) -> np.ndarray | None:
    """A point strictly inside ``P & {a . x <= beta}`` from a strictly interior point
    ``inner`` of ``P`` and ``P``'s vertices: ``inner`` itself when it satisfies the new
    row strictly, else the point on the segment towards the mean of the vertices kept by
    the row where the row's slack is half theirs.  None if no vertex is strictly kept."""
    s_in = float(a @ inner) - beta
    if s_in < -1e-9 * (1.0 + abs(beta)):
        return inner
    if pts is None:
        return None
    vals = pts @ a - beta
    keep = vals < 0.0
    if not keep.any():
        return None
    m = pts[keep].mean(axis=0)
    s_m = float(a @ m) - beta
    if not s_m < 0.0:
        return None
    lam = (s_in - s_m / 2.0) / (s_in - s_m)
    return (1.0 - lam) * inner + lam * m
