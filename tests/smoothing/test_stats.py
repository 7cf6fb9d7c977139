"""Clopper-Pearson bounds, the binomial test of PREDICT and the radius formula."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import beta, binom, norm

from verinet.smoothing import (
    binomial_pvalue,
    certified_radius,
    clopper_pearson_interval,
    clopper_pearson_lower,
)
from verinet.types import InputError


@pytest.mark.parametrize("k,n,alpha", [(1, 1, 0.05), (3, 10, 0.05), (990, 1000, 0.001),
                                       (9_990, 10_000, 0.001), (50, 100, 0.5),
                                       (99_999, 100_000, 1e-6)])
def test_lower_bound_is_the_beta_quantile(k: int, n: int, alpha: float) -> None:
    assert clopper_pearson_lower(k, n, alpha) == pytest.approx(
        beta.ppf(alpha, k, n - k + 1), rel=1e-12)


@pytest.mark.parametrize("k,n,alpha", [(3, 10, 0.05), (700, 1000, 0.001), (12, 13, 0.01)])
def test_lower_bound_solves_the_tail_equation(k: int, n: int, alpha: float) -> None:
    """The defining property: at p = lower, P(Bin(n, p) >= k) = alpha."""
    lo = clopper_pearson_lower(k, n, alpha)
    assert binom.sf(k - 1, n, lo) == pytest.approx(alpha, rel=1e-8)


def test_known_values() -> None:
    # all successes: alpha ** (1 / n); none: 0
    assert clopper_pearson_lower(10_000, 10_000, 0.001) == pytest.approx(0.001 ** 1e-4,
                                                                         rel=1e-12)
    assert clopper_pearson_lower(0, 50, 0.01) == 0.0
    # the textbook 95% interval of 5 successes in 10 trials
    lo, hi = clopper_pearson_interval(5, 10, 0.05)
    assert lo == pytest.approx(0.18709, abs=1e-5) and hi == pytest.approx(0.81291, abs=1e-5)
    assert clopper_pearson_lower(5, 10, 0.025) == pytest.approx(lo, rel=1e-12)
    assert clopper_pearson_interval(0, 10, 0.05)[0] == 0.0
    assert clopper_pearson_interval(10, 10, 0.05)[1] == 1.0


def test_coverage_is_at_least_one_minus_alpha() -> None:
    """Exact coverage over the binomial distribution (no simulation)."""
    n, alpha = 60, 0.05
    ks = np.arange(n + 1)
    lowers = np.array([clopper_pearson_lower(int(k), n, alpha) for k in ks])
    for p in np.linspace(0.01, 0.99, 37):
        assert binom.pmf(ks, n, p)[lowers <= p].sum() >= 1 - alpha - 1e-12


def test_binomial_pvalue() -> None:
    assert binomial_pvalue(10, 10) == pytest.approx(2 * 0.5 ** 10)
    assert binomial_pvalue(5, 10) == pytest.approx(1.0)
    assert binomial_pvalue(0, 0) == 1.0
    assert binomial_pvalue(60, 100) == pytest.approx(0.056887933640980784, rel=1e-9)


def test_radius_formula() -> None:
    assert certified_radius(0.5, norm.cdf(1.0)) == pytest.approx(0.5, rel=1e-12)
    assert certified_radius(0.25, norm.cdf(2.5)) == pytest.approx(0.625, rel=1e-12)
    assert certified_radius(1.0, 0.5) == 0.0
    assert certified_radius(1.0, 0.3) == 0.0
    assert math.isinf(certified_radius(1.0, 1.0))


def test_bad_arguments() -> None:
    with pytest.raises(InputError, match=r"alpha must lie in \(0, 1\)"):
        clopper_pearson_lower(1, 2, 0.0)
    with pytest.raises(InputError, match=r"alpha must lie in \(0, 1\)"):
        clopper_pearson_lower(1, 2, float("nan"))
    with pytest.raises(InputError, match="0 <= k <= n"):
        clopper_pearson_lower(3, 2, 0.1)
    with pytest.raises(InputError, match="must be integers"):
        clopper_pearson_lower(1.5, 2, 0.1)  # type: ignore[arg-type]  # the error under test
    with pytest.raises(InputError, match="sigma must be a positive"):
        certified_radius(0.0, 0.9)
    with pytest.raises(InputError, match=r"p_lower must lie in \[0, 1\]"):
        certified_radius(1.0, 1.5)
