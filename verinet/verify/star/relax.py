"""CROWN back-substitution from a partially processed star onto the input variables.

Used by :mod:`verinet.verify.star.search` as its over-approximation.  The star sits at
ReLU layer ``k`` with pre-activations ``z_k = M x + c`` exact on its polytope; the rows
in ``done`` are already post-activations (exact), the others are relaxed on their sound
bounds ``[lb, ub]`` (upper line ``ub (z - lb) / (ub - lb)``, lower line ``z`` or ``0``,
CROWN's adaptive choice).  Each later layer's pre-activation bounds come from
back-substituting ``+-I`` down to ``x`` and taking the minimum over the star's box; the
spec rows ``A y - b`` are back-substituted the same way and returned as linear functions
``L x + l0`` (the caller minimises them over the star's polytope).

Tolerance: float64; every returned constant carries the magnitude ``mag`` of the terms
summed into it, and intermediate bounds are widened by the float64 slack
``1e-10 * magnitude + 1e-12`` (:data:`verinet.bounds.fp.FLOAT64`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from verinet.bounds.fp import FLOAT64
from verinet.verify.star.state import Bounds

Relax = tuple[np.ndarray, np.ndarray, np.ndarray]  # lower slope, upper slope, upper intercept


def relu_relax(lb: np.ndarray, ub: np.ndarray) -> Relax:
    """CROWN's lines for ReLUs with pre-activation bounds ``[lb, ub]``."""
    act = lb >= 0.0
    cross = (lb < 0.0) & (ub > 0.0)
    su = act.astype(np.float64)
    sl = su.copy()
    iu = np.zeros_like(lb)
    if cross.any():
        l0, u = lb[cross], ub[cross]
        s = u / (u - l0)
        su[cross] = s
        iu[cross] = -s * l0
        sl[cross] = (u >= -l0).astype(np.float64)
    return sl, su, iu


class Relaxer:
    """Back-substitution over a fixed list of affine layers ``(W, b)``."""

    def __init__(self, affines: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
        self.affines = list(affines)
        self.abs_b = [np.abs(b) for _, b in self.affines]
        self.n_relu = len(self.affines) - 1

    def run(self, k: int, done: np.ndarray, M: np.ndarray, c: np.ndarray, lb: np.ndarray,
            ub: np.ndarray, lo: np.ndarray, hi: np.ndarray,
            prior: Sequence[Bounds | None],
            specs: Sequence[tuple[np.ndarray, np.ndarray]],
            lower: Callable[[np.ndarray], np.ndarray] | None = None):
        """(bounds of ReLU layers ``k+1..``, [(L, l0, mag) per spec], split scores).

        ``prior[i]``: known sound bounds of ReLU layer ``k+1+i`` to intersect with.
        ``lower(L)``: sound lower bounds of ``L_r . x`` over the star's polytope, used for
        the later layers' bounds where it beats the box (None: the box only).  The
        score of a neuron of layer ``k`` is the spec rows' total ``|coefficient|`` on it
        times the height ``ub (-lb) / (ub - lb)`` of its relaxation triangle."""
        sl, su, iu = relu_relax(lb, ub)
        sl[done], su[done], iu[done] = 1.0, 1.0, 0.0
        relax: dict[int, Relax] = {k: (sl, su, iu)}
        xmax = np.maximum(np.abs(lo), np.abs(hi))
        later: list[Bounds] = []
        for layer in range(k + 1, self.n_relu):
            n = self.affines[layer][0].shape[0]
            i = layer - k - 1
            p = prior[i] if i < len(prior) else None
            # Neurons already stable under the prior bounds keep them (relaxed exactly).
            rows = np.arange(n) if p is None else np.flatnonzero((p[0] < 0.0) & (p[1] > 0.0))
            eye = np.eye(n)[rows]
            L, const, mag, _ = self._back(layer, k, np.vstack([eye, -eye]),
                                          np.zeros(2 * rows.size), relax, M, c)
            val = np.minimum(L * lo, L * hi).sum(axis=1) + const
            val -= FLOAT64(1.0) + FLOAT64.rel * (np.abs(L) @ xmax + mag)
            if lower is not None:
                val = np.maximum(val, lower(L) + const - FLOAT64(1.0) - FLOAT64.rel * mag)
            if p is None:
                lo_l, hi_l = val[:n], -val[n:]
            else:
                lo_l, hi_l = p[0].copy(), p[1].copy()
                lo_l[rows] = np.maximum(lo_l[rows], val[: rows.size])
                hi_l[rows] = np.minimum(hi_l[rows], -val[rows.size:])
            later.append((lo_l, hi_l))
            relax[layer] = relu_relax(lo_l, hi_l)
        A = np.vstack([a for a, _ in specs])
        b = np.concatenate([bb for _, bb in specs])
        L, const, mag, gam = self._back(self.n_relu, k, A, -b, relax, M, c)
        with np.errstate(divide="ignore", invalid="ignore"):
            height = np.where((lb < 0.0) & (ub > 0.0), ub * -lb / (ub - lb), 0.0)
        score = np.abs(gam).sum(axis=0) * height
        out = []
        start = 0
        for a, _ in specs:
            r = a.shape[0]
            out.append((L[start:start + r], const[start:start + r], mag[start:start + r]))
            start += r
        return tuple(later), out, score

    def _back(self, layer: int, k: int, lam: np.ndarray, off: np.ndarray,
              relax: dict[int, Relax], M: np.ndarray, c: np.ndarray):
        """Lower linear bound ``L x + const`` of ``lam z_layer + off`` on the star (with
        the magnitude of ``const`` and the coefficients on layer ``k``'s outputs)."""
        W, b = self.affines[layer]
        const = lam @ b + off
        mag = np.abs(lam) @ self.abs_b[layer] + np.abs(off)
        gam = lam @ W
        m = layer - 1
        while True:
            sl, su, iu = relax[m]
            pos, neg = np.maximum(gam, 0.0), np.minimum(gam, 0.0)
            lam_m = pos * sl + neg * su
            const += neg @ iu
            mag += -neg @ np.abs(iu)
            if m == k:
                break
            W, b = self.affines[m]
            const += lam_m @ b
            mag += np.abs(lam_m) @ self.abs_b[m]
            gam = lam_m @ W
            m -= 1
        const += lam_m @ c
        mag += np.abs(lam_m) @ np.abs(c)
        return lam_m @ M, const, mag, gam
