"""Chebyshev (L-inf) regression, the LP behind DeepPAC's fits:

    ``min_{c, lambda} lambda  s.t.  -lambda <= a_k . c - d_k <= lambda,  -b <= c <= b``.

Two exact solvers:

* :func:`chebyshev_fit`: HiGHS (through scipy), optionally by constraint generation --
  the LP on a subset of the rows, re-solved with the rows it violates until none is
  violated, which is then optimal for the full LP.  Fast when few rows are active (the
  ``kappa + 1``-variable Phase 2 fits: at most ``kappa + 2`` rows are).
* :func:`chebyshev_ipm`: a dense primal-dual interior point method (Mehrotra
  predictor-corrector) for the box-free problem on standardised features, for the
  786-variable Phase 1 fits where about 40% of the rows are active: one dense
  ``(p + 1)``-square Cholesky per iteration, ~15 iterations, about 1 s per class on
  MNIST against 0.5 to 1 minute for HiGHS.  Its answer is used only when it converged
  and lies inside the box (then it is optimal for the boxed LP too); otherwise HiGHS.

Nothing here is trusted for a guarantee: the fits only shape DeepPAC's model.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

log = logging.getLogger(__name__)

CG_INITIAL_ROWS = 400  # constraint generation: first subset of samples
CG_ADDED_ROWS = 200    # most violated samples added per round
IPM_MAX_ITERATIONS = 80
IPM_GAP = 1e-9         # stop when the duality gap is below this share of lambda
IPM_FLOAT32_GAP = 1e-2  # float32 Newton matrices while the gap exceeds this share of lambda


def chebyshev_fit(a: np.ndarray, d: np.ndarray, bound: float, generate: bool = True
                  ) -> tuple[np.ndarray, float]:
    """``argmin_c max_k |a_k . c - d_k|`` over ``-bound <= c <= bound`` by HiGHS; returns
    the coefficients and the attained maximum residual.  ``generate``: constraint
    generation (exact)."""
    k, p = a.shape
    if k == 0:
        return np.zeros(p), 0.0
    if not generate or k <= CG_INITIAL_ROWS:
        return _chebyshev_lp(a, d, bound, "highs-ipm" if not generate else "highs-ds")
    rows = np.unique(np.linspace(0, k - 1, max(CG_INITIAL_ROWS, 2 * p)).astype(np.int64))
    while True:
        c, lam = _chebyshev_lp(a[rows], d[rows], bound, "highs-ds")
        res = np.abs(a @ c - d)
        bad = np.flatnonzero(res > lam + 1e-9 * (1.0 + lam))
        bad = bad[~np.isin(bad, rows)]  # rows in the LP hold up to the solver's tolerance
        if bad.size == 0:
            return c, float(np.max(res))
        worst = bad[np.argsort(-res[bad])[:CG_ADDED_ROWS]]
        rows = np.union1d(rows, worst)


def _chebyshev_lp(a: np.ndarray, d: np.ndarray, bound: float, method: str
                  ) -> tuple[np.ndarray, float]:
    from scipy.optimize import linprog  # 0.6 s to import: only the LP fallback needs it

    k, p = a.shape
    ones = np.ones((k, 1))
    a_ub = np.vstack([np.hstack([a, -ones]), np.hstack([-a, -ones])])
    b_ub = np.concatenate([d, -d])
    cost = np.zeros(p + 1)
    cost[-1] = 1.0
    bounds = [(-bound, bound)] * p + [(0.0, None)]
    res = linprog(cost, A_ub=a_ub, b_ub=b_ub, bounds=bounds, method=method)
    if res.status != 0 or res.x is None:
        # The LP is always feasible (c = 0, lambda large); a failure is numerical.
        log.warning("Chebyshev LP failed (%s); keeping the least-squares fit", res.message)
        c = np.clip(np.linalg.lstsq(a, d, rcond=None)[0], -bound, bound)
        return c, float(np.max(np.abs(a @ c - d)))
    c = np.asarray(res.x[:p], dtype=np.float64)
    return c, float(res.x[-1])


def chebyshev_ipm(z: torch.Tensor, d: torch.Tensor, c: torch.Tensor | None = None
                  ) -> torch.Tensor | None:
    """The box-free Chebyshev fit of ``d`` (K,) on ``z`` (K, p), float64, by a feasible
    primal-dual interior point method; ``None`` if it did not converge.

    Start: ``c`` (default: least squares), ``lambda = 1.5 max|r| + tiny`` (strictly
    feasible) and
    multipliers ``u = v = 1/(2K)`` (dual feasible: ``z^T (u - v) = 0``, ``sum = 1``).
    Each Newton step solves the ``(p + 1)``-square system
    ``[[z^T W z, z^T E], [E^T z, sum W]] [dc; dlambda] = rhs`` with ``W = u/s1 + v/s2``,
    ``E = v/s2 - u/s1`` (slacks ``s1 = lambda - r``, ``s2 = lambda + r``).  Speed: the
    Gram matrix is formed in float32 while the gap is large (the directions only need to
    be rough there; feasibility is kept in float64 by the step lengths)."""
    k, p = z.shape
    if c is None:
        c = torch.linalg.lstsq(z, d[:, None], driver="gelsd").solution[:, 0]
    z32 = z.float()
    r = z @ c - d
    lam = 1.5 * float(r.abs().max()) + 1e-9 * (1.0 + float(d.abs().max()))
    u = torch.full((k,), 0.5 / k, dtype=torch.float64)
    v = u.clone()
    for _ in range(IPM_MAX_ITERATIONS):
        s1, s2 = lam - r, lam + r
        gap = float((u * s1).sum() + (v * s2).sum())
        if gap <= IPM_GAP * lam + 1e-300:
            return c
        mu = gap / (2 * k)
        d1, d2 = u / s1, v / s2
        chol = _factor(z, z32, d1 + d2, d2 - d1, gap > IPM_FLOAT32_GAP * lam)
        if chol is None:
            return None

        def direction(g1: torch.Tensor, g2: torch.Tensor, chol: torch.Tensor = chol,
                      d1: torch.Tensor = d1, d2: torch.Tensor = d2) -> tuple[torch.Tensor, ...]:
            rhs = torch.cat([(g2 - g1) @ z, (g1 + g2).sum().reshape(1)])
            x = torch.cholesky_solve(rhs[:, None], chol)[:, 0]
            dz = z @ x[:p]
            ds1, ds2 = x[p] - dz, x[p] + dz
            return x, ds1, ds2, g1 - d1 * ds1, g2 - d2 * ds2

        _, ds1, ds2, du, dv = direction(-u, -v)  # predictor (affine scaling)
        ap = min(_step(s1, ds1), _step(s2, ds2))
        ad = min(_step(u, du), _step(v, dv))
        mu_aff = float(((u + ad * du) * (s1 + ap * ds1)).sum()
                       + ((v + ad * dv) * (s2 + ap * ds2)).sum()) / (2 * k)
        sigma = min(1.0, max(0.0, mu_aff / mu)) ** 3
        g1 = (sigma * mu - du * ds1) / s1 - u  # corrector
        g2 = (sigma * mu - dv * ds2) / s2 - v
        x, ds1, ds2, du, dv = direction(g1, g2)
        ap = min(1.0, 0.995 * min(_step(s1, ds1), _step(s2, ds2)))
        ad = min(1.0, 0.995 * min(_step(u, du), _step(v, dv)))
        c = c + ap * x[:p]
        lam = lam + ap * float(x[p])
        r = z @ c - d
        u, v = u + ad * du, v + ad * dv
    return None


def _factor(z: torch.Tensor, z32: torch.Tensor, w: torch.Tensor, e: torch.Tensor,
            rough: bool) -> torch.Tensor | None:
    """Cholesky factor of the Newton matrix (a little diagonal regularisation, more if
    the factorisation fails); None if it keeps failing.  ``rough``: Gram in float32."""
    p = z.shape[1]
    m = torch.empty((p + 1, p + 1), dtype=torch.float64)
    if rough:
        b32 = z32 * w.sqrt().float()[:, None]
        m[:p, :p] = (b32.T @ b32).double()
    else:
        b = z * w.sqrt()[:, None]
        m[:p, :p] = b.T @ b
    m[:p, p] = m[p, :p] = e @ z
    m[p, p] = w.sum()
    scale = float(m.diagonal().mean())
    for reg in (1e-13, 1e-11, 1e-9):
        chol, info = torch.linalg.cholesky_ex(m + reg * scale * torch.eye(p + 1,
                                                                          dtype=torch.float64))
        if int(info) == 0:
            return chol
    return None


def _step(x: torch.Tensor, dx: torch.Tensor) -> float:
    """Largest ``alpha`` with ``x + alpha dx >= 0`` (inf if ``dx >= 0``)."""
    neg = dx < 0
    if not bool(neg.any()):
        return float("inf")
    return float((-x[neg] / dx[neg]).min())
