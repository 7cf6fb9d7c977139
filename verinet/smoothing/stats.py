"""The statistics of randomized smoothing (Cohen, Rosenfeld and Kolter, ICML 2019).

* :func:`clopper_pearson_lower`: the one-sided Clopper-Pearson lower confidence bound on
  a binomial proportion, ``LowerConfBound(k, n, 1 - alpha)`` of the paper's ``CERTIFY``:
  the ``alpha`` quantile of ``Beta(k, n - k + 1)`` (0 when ``k = 0``).  With probability
  at least ``1 - alpha`` over the draws it lies below the true proportion.  It is what the
  paper's code computes with ``proportion_confint(k, n, alpha=2 * alpha, method="beta")[0]``.
* :func:`clopper_pearson_interval`: the two-sided interval at level ``1 - alpha``.
* :func:`binomial_pvalue`: the two-sided exact binomial test of ``p = 1/2`` that the
  paper's ``PREDICT`` applies to the counts of its top two classes.
* :func:`certified_radius`: ``sigma * Phi^-1(p_lower)``, the L2 radius of Theorem 1 with
  ``pB = 1 - pA`` (0 for ``p_lower <= 1/2``: nothing is certified).

Nothing here draws samples; the functions are exact up to scipy's special functions.
"""

from __future__ import annotations

import math

from scipy.stats import beta, binomtest, norm

from verinet.types import InputError


def _check_counts(k: int, n: int) -> None:
    if not (isinstance(k, int) and isinstance(n, int)):
        raise InputError(f"counts must be integers, got k={k!r}, n={n!r}")
    if n < 1 or not 0 <= k <= n:
        raise InputError(f"need 0 <= k <= n and n >= 1, got k={k}, n={n}")


def check_alpha(alpha: float) -> float:
    """``alpha`` as a float, refused unless it lies in the open interval (0, 1)."""
    try:
        a = float(alpha)
    except (TypeError, ValueError):
        raise InputError(f"alpha must be a number, got {alpha!r}") from None
    if not 0.0 < a < 1.0:  # NaN fails too
        raise InputError(f"alpha must lie in (0, 1), got {alpha}")
    return a


def clopper_pearson_lower(k: int, n: int, alpha: float) -> float:
    """One-sided ``1 - alpha`` lower confidence bound on the success probability after
    ``k`` successes in ``n`` trials (see the module doc)."""
    _check_counts(k, n)
    a = check_alpha(alpha)
    return 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))


def clopper_pearson_interval(k: int, n: int, alpha: float) -> tuple[float, float]:
    """Two-sided ``1 - alpha`` Clopper-Pearson interval ``(lower, upper)``."""
    _check_counts(k, n)
    a = check_alpha(alpha)
    lo = 0.0 if k == 0 else float(beta.ppf(a / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a / 2, k + 1, n - k))
    return lo, hi


def binomial_pvalue(k: int, n: int) -> float:
    """Two-sided exact binomial test of ``p = 1/2`` for ``k`` successes in ``n`` trials
    (1 when ``n = 0``: no evidence at all)."""
    if n == 0:
        return 1.0
    _check_counts(k, n)
    return float(binomtest(k, n, 0.5).pvalue)


def certified_radius(sigma: float, p_lower: float) -> float:
    """``sigma * Phi^-1(p_lower)`` for ``p_lower > 1/2``, else 0 (no certificate)."""
    if not (math.isfinite(sigma) and sigma > 0):
        raise InputError(f"sigma must be a positive finite number, got {sigma}")
    if not 0.0 <= p_lower <= 1.0:
        raise InputError(f"p_lower must lie in [0, 1], got {p_lower}")
    return float(sigma * norm.ppf(p_lower)) if p_lower > 0.5 else 0.0
