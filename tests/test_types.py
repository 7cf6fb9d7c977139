import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from verinet.spec.property import Halfspaces, Property, Term
from verinet.types import (
    Box,
    Counterexample,
    InputError,
    PropertyError,
    Reason,
    Sandwich,
    SoundnessError,
    Status,
    linf_ball_bounds,
    linf_reach,
)
from verinet.verify.result import VerificationResult


def test_box_rejects_empty_and_nan():
    with pytest.raises(InputError, match="empty box"):
        Box(np.array([1.0]), np.array([0.0]))
    with pytest.raises(InputError, match="NaN"):
        Box(np.array([np.nan]), np.array([0.0]))


def test_box_is_read_only():
    b = Box(np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match="assignment destination is read-only"):
        b.lower[0] = 5.0


@pytest.mark.parametrize("eps", [-0.1, float("nan"), float("inf")])
def test_linf_ball_rejects_bad_eps(eps):
    with pytest.raises(InputError, match="eps"):
        Box.linf_ball(np.zeros(2), eps)


def test_linf_ball_clips():
    b = Box.linf_ball(np.array([0.0, 0.5, 1.0]), 0.1)
    assert np.allclose(b.lower, [0.0, 0.4, 0.9]) and np.allclose(b.upper, [0.1, 0.6, 1.0])


def test_linf_ball_per_coordinate_domain():
    b = Box.linf_ball(np.array([0.5, 0.5]), 0.3, np.array([0.0, 0.4]), np.array([0.7, 1.0]))
    np.testing.assert_allclose(b.lower, [0.2, 0.4])
    np.testing.assert_allclose(b.upper, [0.7, 0.8])


@given(st.lists(st.floats(0, 1), min_size=3, max_size=3),
       st.lists(st.floats(0, 2), min_size=4, max_size=4))
def test_linf_ball_bounds_batches_are_single_balls(x, radii):
    """One centre with B radii, B centres with one radius each, and one ball at a time
    agree exactly; inside the domain they are ``max(x - e, lo)``, ``min(x + e, hi)``."""
    lo, hi = np.array([0.0, 0.1, 0.2]), np.array([1.0, 0.9, 1.0])
    x0 = np.clip(np.array(x), lo, hi)
    eps = np.array(radii)
    one_centre = linf_ball_bounds(x0, eps, lo, hi)
    many = linf_ball_bounds(np.tile(x0, (eps.size, 1)), eps, lo, hi)
    assert one_centre[0].shape == many[0].shape == (eps.size, x0.size)
    for i, e in enumerate(eps):
        single = linf_ball_bounds(x0, float(e), lo, hi)
        for got in (one_centre, many):
            np.testing.assert_array_equal(got[0][i], single[0])
            np.testing.assert_array_equal(got[1][i], single[1])
        np.testing.assert_array_equal(single[0], np.maximum(x0 - e, lo))
        np.testing.assert_array_equal(single[1], np.minimum(x0 + e, hi))
    assert linf_reach(x0, lo, hi) == float(np.max(np.maximum(x0 - lo, hi - x0)))


@given(st.floats(-10, 10), st.floats(0, 5), st.floats(0, 1e-7))
def test_sandwich_invariant(lo, gap, slack):
    s = Sandwich(lo, lo + gap)
    assert s.gap >= 0
    with pytest.raises(SoundnessError, match=r"lower bound .* exceeds upper bound .* by 0\.001"):
        Sandwich(lo + gap + 1e-3 + slack, lo + gap)


def test_sandwich_nan_raises():
    with pytest.raises(SoundnessError, match=r"sandwich end is NaN: \[nan, 1\.0\]"):
        Sandwich(float("nan"), 1.0)


def test_robustness_property_semantics():
    box = Box(np.zeros(2), np.ones(2))
    p = Property.robustness(box, label=1, n_outputs=3)
    assert len(p.terms) == 2
    assert p.violated_by(np.array([0.5, 0.5]), np.array([0.0, 1.0, 0.5])) == -1
    assert p.violated_by(np.array([0.5, 0.5]), np.array([1.0, 1.0, 0.5])) == 0  # a tie counts
    assert p.violated_by(np.array([1.5, 0.5]), np.array([2.0, 1.0, 0.5])) == -1  # outside box
    with pytest.raises(PropertyError, match="label 3 out of range for 3 outputs"):
        Property.robustness(box, label=3, n_outputs=3)


def test_property_checks_dimensions():
    box = Box(np.zeros(2), np.ones(2))
    with pytest.raises(PropertyError, match="term constrains 3 outputs, expected 2"):
        Property((Term(box, Halfspaces(np.ones((1, 3)), np.zeros(1))),), 2, 2)
    with pytest.raises(PropertyError, match="property has no terms"):
        Property((), 2, 2)


def test_result_invariants():
    cex = Counterexample(np.zeros(2), np.zeros(2), confirmed=False)
    with pytest.raises(SoundnessError, match="falsified verdict needs a confirmed counterexample"):
        VerificationResult(Status.FALSIFIED, Reason.WITNESS_CONFIRMED, cex)
    with pytest.raises(SoundnessError, match="falsified verdict needs a confirmed counterexample"):
        VerificationResult(Status.FALSIFIED, Reason.WITNESS_CONFIRMED, None)
    ok = Counterexample(np.zeros(2), np.zeros(2), confirmed=True)
    with pytest.raises(SoundnessError, match="verified verdict with a confirmed counterexample"):
        VerificationResult(Status.VERIFIED, Reason.PROVEN_BY_BOUNDS, ok)
    assert VerificationResult(Status.UNKNOWN, Reason.TIMEOUT).vnncomp == "timeout"
    assert VerificationResult(Status.UNKNOWN, Reason.INCOMPLETE).vnncomp == "unknown"
