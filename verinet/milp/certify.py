"""Solver-independent certification of LP lower bounds (Neumaier & Shcherbina 2004).

For ``min c@x`` s.t. ``L <= A@x <= U``, ``l <= x <= u`` and *any* row multipliers
``y``, weak duality gives, for every feasible ``x``::

    c@x = y@(A@x) + (c - A^T y)@x >= sum_i min(y_i L_i, y_i U_i) + sum_j min(r_j l_j, r_j u_j)

with ``r = c - A^T y``.  The value is a valid bound however inaccurate ``y`` is, so an
LP solver's duals are never trusted, only used.  Multipliers whose needed side is
infinite are set to zero first.  The float64 evaluation is made sound by subtracting
``CERT(M) = 1e-9 * M + 1e-12`` (``M`` the sum of the magnitudes involved; the rule of
:mod:`verinet.bounds.fp` with ten times its float64 ``rel``), which dominates the
rounding error of sums of up to 10^6 terms.  The bound is also a bound on the MILP
(integrality only shrinks the feasible set).
"""

from __future__ import annotations

import math

import numpy as np

from verinet.bounds.fp import FLOAT64, Slack
from verinet.milp.backend import ModelArrays

#: The certificate's slack: LP problems sum up to 10^6 terms (FLOAT64 covers 10^5).
CERT = Slack(rel=1e-9, abs=FLOAT64.abs)


def _side_products(coef: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``min(coef*lo, coef*hi)`` elementwise with ``0*inf = 0``; ``-inf`` where unbounded."""
    out = np.zeros_like(coef)
    pos, neg = coef > 0, coef < 0
    with np.errstate(invalid="ignore", over="ignore"):
        out[pos] = coef[pos] * lo[pos]
        out[neg] = coef[neg] * hi[neg]
    return out


def safe_lower_bound(model: ModelArrays, row_duals: np.ndarray) -> float:
    """A rigorous lower bound on the LP (hence MILP) minimum from any multipliers."""
    y = np.nan_to_num(np.asarray(row_duals, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if y.shape != model.row_lower.shape:
        raise ValueError(f"{y.size} row multipliers for {model.row_lower.size} rows")
    y = y.copy()
    y[(y > 0) & ~np.isfinite(model.row_lower)] = 0.0
    y[(y < 0) & ~np.isfinite(model.row_upper)] = 0.0
    A = model.matrix
    r = model.cost - A.T @ y
    row_terms = _side_products(y, model.row_lower, model.row_upper)
    col_terms = _side_products(r, model.col_lower, model.col_upper)
    if not (np.isfinite(row_terms).all() and np.isfinite(col_terms).all()):
        return -math.inf
    big = np.maximum(np.abs(model.col_lower), np.abs(model.col_upper))
    big = np.where(np.isfinite(big), big, 0.0)
    ay = model.abs_matrix.T @ np.abs(y)
    mag = (np.abs(row_terms).sum() + np.abs(col_terms).sum()
           + float((ay + np.abs(model.cost)) @ big))
    value = float(row_terms.sum() + col_terms.sum())
    return CERT.lower(value, mag)
