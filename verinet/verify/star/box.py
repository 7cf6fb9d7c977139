"""Box arithmetic of the star search: sound ranges of affine rows over a box, the box's
corners, and one round of bound propagation of a split row into the box."""

from __future__ import annotations

import numpy as np

from verinet.bounds.fp import FLOAT64
from verinet.verify.star.state import Bounds


def interval(M: np.ndarray, c: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> Bounds:
    """Sound range of every row of ``M x + c`` over the box."""
    mid, rad = (lo + hi) / 2.0, (hi - lo) / 2.0
    centre = M @ mid + c
    spread = np.abs(M) @ rad
    xmax = np.maximum(np.abs(lo), np.abs(hi))
    slack = FLOAT64(1.0) + FLOAT64.rel * (np.abs(M) @ xmax + np.abs(c))
    return centre - spread - slack, centre + spread + slack


def box_corners(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Every vertex of the box (fixed coordinates once)."""
    free = np.flatnonzero(hi > lo)
    bits = (np.arange(2 ** free.size)[:, None] >> np.arange(free.size)) & 1
    pts = np.repeat(lo[None, :], bits.shape[0], axis=0)
    pts[:, free] = np.where(bits == 1, hi[free], lo[free])
    return pts


def tighten_box(lo: np.ndarray, hi: np.ndarray, a: np.ndarray, beta: float) -> Bounds:
    """The box of ``{x in [lo, hi] : a . x <= beta}`` by one round of bound propagation
    (widened by the rounding slack; a coordinate that would become empty is kept)."""
    contrib = np.minimum(a * lo, a * hi)
    total = float(contrib.sum())
    mag = float(np.abs(a) @ np.maximum(np.abs(lo), np.abs(hi))) + abs(beta)
    rest = beta - (total - contrib) + FLOAT64(mag)
    with np.errstate(divide="ignore", invalid="ignore"):
        lim = rest / a
    new_lo, new_hi = lo.copy(), hi.copy()
    pos, neg = a > 0, a < 0
    new_hi[pos] = np.minimum(hi[pos], lim[pos])
    new_lo[neg] = np.maximum(lo[neg], lim[neg])
    bad = new_lo > new_hi
    new_lo[bad], new_hi[bad] = lo[bad], hi[bad]
    return new_lo, new_hi
