"""DeepPAC sample counts (the reference formula) and the validation of its options."""

from __future__ import annotations

import math

import numpy as np
import pytest

from verinet.pac import FeatureMap, PacOptions, free_coefficients, scenario_count
from verinet.pac.sampling import Ball, draw_phases
from verinet.types import InputError

# (epsilon, eta) -> K3, kappa at K2 = 8000 and at K2 = 10000: the table of the reference
# (shared/docs/algorithms.md, Sec. 1), from K >= (2/eps)(ln(1/eta) + d).
TABLE = [
    ((0.01, 0.001), 1582, 32, 42),
    ((0.01, 0.01), 1122, 34, 44),
    ((0.01, 0.1), 661, 36, 46),
    ((0.1, 0.001), 159, 392, 492),
]


@pytest.mark.parametrize(("rates", "k3", "kappa8", "kappa10"), TABLE, ids=repr)
def test_counts_match_the_reference_table(rates: tuple[float, float], k3: int, kappa8: int,
                                          kappa10: int) -> None:
    eps, eta = rates
    assert scenario_count(eps, eta) == k3
    assert free_coefficients(8000, eps, eta, 785) == kappa8
    assert free_coefficients(10000, eps, eta, 785) == kappa10
    c = PacOptions(epsilon=eps, eta=eta).counts(784)
    assert (c.k1, c.k2, c.k3, c.kappa) == (2000, 8000, k3, kappa8)
    assert c.forward_passes == 2000 + 8000 + k3


@pytest.mark.parametrize("eps", [0.3, 0.05, 0.01, 0.002])
@pytest.mark.parametrize("eta", [0.2, 1e-3, 1e-9])
@pytest.mark.parametrize("d", [1, 7, 40])
def test_counts_follow_the_formula(eps: float, eta: float, d: int) -> None:
    k = scenario_count(eps, eta, d)
    exact = 2.0 / eps * (math.log(1.0 / eta) + d)
    assert k - 1 < exact <= k
    # kappa is the largest d - 1 whose scenario count fits into K2 samples.
    k2 = 5000
    kappa = free_coefficients(k2, eps, eta, 10**6)
    assert kappa == math.floor(k2 * eps / 2 - math.log(1 / eta) - 1)
    if kappa >= 0:
        assert scenario_count(eps, eta, kappa + 1) <= k2 + 1
    assert free_coefficients(k2, eps, eta, 3) == min(kappa, 3)  # capped at n + 1


def test_kappa_is_capped_by_the_features() -> None:
    assert PacOptions(epsilon=0.1).counts(4).kappa == 5  # n + 1 coefficients in all
    assert PacOptions(kappa=3).counts(784).kappa == 3
    assert PacOptions(kappa=900).counts(10).kappa == 11


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"epsilon": 0.0}, r"epsilon \(error rate\) must lie in \(0, 1\), got 0.0"),
    ({"epsilon": 1.0}, "epsilon .* must lie in"),
    ({"epsilon": -0.1}, "epsilon .* must lie in"),
    ({"epsilon": float("nan")}, "epsilon .* must lie in"),
    ({"eta": 0.0}, r"eta \(significance\) must lie in \(0, 1\), got 0.0"),
    ({"eta": 1.5}, "eta .* must lie in"),
    ({"k2": 1000}, r"k2 = 1000 samples are too few .* kappa .* < 0; need k2 >= 1582"),
    ({"k3": 1000}, r"k3 = 1000 samples are too few .* needs at least 1582"),
    ({"kappa": -1}, "kappa must be an integer >= 0, got -1"),
    ({"k1": 0}, "k1 must be a positive number of samples"),
    ({"phase1": "qr"}, "phase1 must be one of lawson, lstsq, lp"),
    ({"lawson_steps": 0}, "lawson_steps must be a positive integer"),
    ({"dtype": "float16"}, "dtype must be float32 or float64"),
    ({"coef_bound": 0.0}, "coef_bound must be a positive number"),
    ({"seed": -1}, "seed must be an integer"),
], ids=repr)
def test_bad_options_are_one_line_input_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(InputError, match=match) as e:
        PacOptions(**kwargs)
    assert "\n" not in str(e.value)


def test_direct_count_errors() -> None:
    with pytest.raises(InputError, match="eta"):
        scenario_count(0.01, 1.0)
    with pytest.raises(InputError, match="at least 1 decision variable"):
        scenario_count(0.01, 0.1, 0)
    with pytest.raises(InputError, match="epsilon"):
        free_coefficients(8000, 2.0, 0.1, 10)


def test_more_samples_than_needed_are_fine() -> None:
    assert PacOptions(k3=5000).counts(10).k3 == 5000
    assert PacOptions(epsilon=0.1, eta=0.01, k2=113).counts(10).kappa == 0


def test_samples_are_the_artifacts_stream() -> None:
    """K1, K2, K3 points drawn in order, one uniform(lower, upper) call per point, from
    RandomState(seed) restarted at every verdict (np.random.seed(0) in the artifact)."""
    x0 = np.array([0.0, 0.5, 1.0])
    ball = Ball.around(x0, 0.2)
    assert ball.lower.tolist() == [0.0, 0.3, 0.8] and ball.upper.tolist() == [0.2, 0.7, 1.0]
    counts = PacOptions(epsilon=0.1, eta=0.01, k1=3, k2=200).counts(3)
    s1, s2, s3 = draw_phases(ball, counts, seed=0)
    np.random.seed(0)
    ref = [np.random.uniform(ball.lower, ball.upper) for _ in range(3 + 200 + counts.k3)]
    np.testing.assert_array_equal(np.vstack([s1, s2, s3]), np.array(ref))
    again = draw_phases(ball, counts, seed=0)
    np.testing.assert_array_equal(again[2], s3)
    assert np.all((s3 >= ball.lower) & (s3 <= ball.upper))


def test_feature_map() -> None:
    fm = FeatureMap.normalisation([0.5, 0.25], [2.0, 4.0], (1, 2, 2, 1))
    assert fm.mean.tolist() == [0.5, 0.5, 0.25, 0.25] and fm.std.tolist() == [2, 2, 4, 4]
    a = fm(np.array([[1.0, 0.5, 0.25, 4.25]]))
    assert a.tolist() == [[0.25, 0.0, 0.0, 1.0, 1.0]]
    with pytest.raises(InputError, match="do not broadcast"):
        FeatureMap.normalisation([0.1, 0.2, 0.3], None, (1, 2, 2, 1))
    with pytest.raises(InputError, match="positive std"):
        FeatureMap(np.zeros(2), np.array([1.0, 0.0]))
