"""The slack rule: float64 constants as before, float32 grows with the path length, and it
really covers the rounding of long float32 sums."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from verinet.bounds.fp import FLOAT64, Slack, fp_slack


def test_float64_rule_is_the_historic_constant() -> None:
    assert fp_slack(2.0) == pytest.approx(2e-10 + 1e-12)
    assert Slack.for_dtype(torch.float64, 1000) is FLOAT64
    assert Slack.for_dtype("float64", 10**7).rel > FLOAT64.rel


def test_float32_rule_grows_with_roundings() -> None:
    a, b = Slack.for_dtype(torch.float32, 100), Slack.for_dtype(np.float32, 10_000)
    assert 0 < a.rel < b.rel
    assert a.rel == pytest.approx(2 * 100 * 2.0**-24, rel=1e-3)


def test_refuses_low_precision() -> None:
    with pytest.raises(ValueError, match="no sound slack rule for dtype float16"):
        Slack.for_dtype(torch.float16, 10)
    with pytest.raises(ValueError, match="no meaningful slack"):
        Slack.for_dtype(torch.float32, 10**8)


def test_float32_slack_covers_real_sums() -> None:
    rng = np.random.default_rng(0)
    n = 4096
    slack = Slack.for_dtype(torch.float32, n)
    for _ in range(20):
        x = rng.standard_normal(n) * 10.0 ** rng.uniform(-3, 3, n)
        w = rng.standard_normal(n)
        exact = float(np.dot(x.astype(np.float32).astype(np.float64),
                             w.astype(np.float32).astype(np.float64)))
        got = float(torch.dot(torch.tensor(x, dtype=torch.float32),
                              torch.tensor(w, dtype=torch.float32)))
        mag = float(np.abs(x) @ np.abs(w))
        assert abs(got - exact) <= slack(mag)


def test_works_on_tensors_and_arrays() -> None:
    t = FLOAT64(torch.tensor([-1.0, 2.0], dtype=torch.float64))
    assert torch.all(t > 0)
    assert FLOAT64.lower(1.0, 1.0) < 1.0 < FLOAT64.upper(1.0, 1.0)


@given(st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False))
@settings(max_examples=300, deadline=None)
def test_reproducible_lower_rounds_down_by_at_most_its_step(x: float) -> None:
    from verinet.bounds.fp import REPRODUCIBLE_BITS, reproducible_lower

    r = reproducible_lower(x)
    assert r <= x and abs(x - r) <= 2.0 ** -(REPRODUCIBLE_BITS - 1) * abs(x)
    assert reproducible_lower(r) == r


def test_reproducible_lower_absorbs_last_digit_noise() -> None:
    from verinet.bounds.fp import reproducible_lower

    # two HiGHS dual bounds of one sample's radius MILP, from identical runs
    assert reproducible_lower(0.1044439794680741) == reproducible_lower(0.1044439794680714)
    assert reproducible_lower(0.0) == 0.0 and reproducible_lower(-math.inf) == -math.inf
