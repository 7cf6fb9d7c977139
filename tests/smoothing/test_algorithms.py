"""PREDICT and CERTIFY: abstention, seeding, order and batch independence, clipping, the
guarantee label, options and results."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.smoothing.models import bands, bands_probs, binary, linear_network
from verinet.smoothing import (
    Certificate,
    Phase,
    SmoothedClassifier,
    SmoothingOptions,
    SmoothingReport,
    certified_accuracy,
    radius_grid,
    run_smoothing,
)
from verinet.types import InputError, Sandwich

W = np.array([1.0, -1.0])


def _g(net=None, **kw) -> SmoothedClassifier:
    opts = {"sigma": 0.5, "n0": 50, "n": 2000, **kw}
    return SmoothedClassifier(binary(W, 0.0) if net is None else net, SmoothingOptions(**opts))


def test_abstains_on_the_boundary() -> None:
    """On the decision boundary both classes have probability 1/2: CERTIFY's lower bound
    is below 1/2 and PREDICT's binomial test cannot separate them."""
    g = _g(n=5000)
    x = np.array([0.3, 0.3])  # w.x = 0
    c = g.certify(x, index=0, label=0)
    assert c.abstained and c.prediction is None and c.radius is None and c.p_lower < 0.5
    assert not c.correct and not c.certified_at(0.0)
    p = g.predict(x, index=0, label=0)
    assert p.abstained and p.p_value > 0.001
    assert sum(p.counts) == 5000


def test_abstains_when_the_top_two_of_three_are_close() -> None:
    """Three bands (class 0 for s < -1, 1 for -1 < s < 0, 2 for s > 0) at s = -0.016
    with sigma 0.5: P = (0.025, 0.488, 0.487) in closed form, so both abstain."""
    w, th = np.array([1.0, 0.0]), np.array([-1.0, 0.0])
    x = np.array([-0.016, 0.0])
    p = bands_probs(w, th, x, 0.5)
    assert abs(p[1] - p[2]) < 2e-3 and 0.02 < p[0] < 0.03
    g = _g(bands(w, th), sigma=0.5, n=4000)
    c = g.certify(x, index=1)
    assert c.abstained and c.p_lower < 0.5 and c.selected in (1, 2)
    p = g.predict(x, index=1)
    assert p.abstained and set(p.top) == {1, 2}


def test_certifies_and_predicts_far_from_the_boundary() -> None:
    g = _g()
    x = np.array([0.9, -0.9])  # w.x = 1.8, class 1; distance 1.27
    c = g.certify(x, index=0, label=1)
    assert c.prediction == 1 and c.correct and c.radius is not None
    assert 0 < c.radius <= 1.8 / np.sqrt(2)
    assert c.certified_at(c.radius) and not c.certified_at(c.radius + 1e-9)
    p = g.predict(x, index=0, label=1)
    assert p.prediction == 1 and p.p_value <= 0.001 and p.correct


def test_reproducible_from_the_seed() -> None:
    x = np.array([0.2, 0.0])
    a = _g(seed=7).certify(x, index=4)
    b = _g(seed=7).certify(x, index=4)
    assert dataclasses.replace(a, seconds=0) == dataclasses.replace(b, seconds=0)
    c = _g(seed=8).certify(x, index=4)
    d = _g(seed=7).certify(x, index=5)  # another sample index: other draws
    assert (c.count, c.selection_count) != (a.count, a.selection_count)
    assert (d.count, d.selection_count) != (a.count, a.selection_count)


@pytest.mark.parametrize("batch", [1, 7, 64, 999, 100_000])
def test_counts_do_not_depend_on_the_batch_size(batch: int) -> None:
    x = np.array([0.1, 0.05])
    ref = _g(batch=1000).counts(x, 3000, index=2, phase=Phase.ESTIMATION)
    got = _g(batch=batch).counts(x, 3000, index=2, phase=Phase.ESTIMATION)
    assert np.array_equal(ref, got) and ref.sum() == 3000


def test_phases_draw_independent_noise() -> None:
    g = _g()
    x = np.array([0.1, 0.05])
    counts = [tuple(g.counts(x, 500, index=0, phase=ph)) for ph in Phase]
    assert len(set(counts)) == len(counts)


def test_results_do_not_depend_on_the_order_of_the_samples() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (5, 2))
    y = (x @ W > 0).astype(int)
    opts = SmoothingOptions(sigma=0.5, n0=20, n=500)
    net = binary(W, 0.0)
    fwd = run_smoothing(net, x, y, opts, indices=np.arange(10, 15))
    order = [3, 0, 4, 1, 2]
    back = run_smoothing(net, x[order], y[order], opts, indices=np.arange(10, 15)[order])
    by_index = {c.index: dataclasses.replace(c, seconds=0) for c in back.samples}
    assert [dataclasses.replace(c, seconds=0) for c in fwd.samples] == [
        by_index[i] for i in range(10, 15)]


def test_a_trailing_softmax_changes_nothing() -> None:
    wt, bs = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]), np.array([0.0, 0.1, 0.2])
    x = np.array([0.3, 0.2])
    a = _g(linear_network(wt, bs)).certify(x, index=0)
    b = _g(linear_network(wt, bs, softmax=True)).certify(x, index=0)
    assert (a.count, a.selected, a.p_lower) == (b.count, b.selected, b.p_lower)


def test_noise_is_clipped_only_when_asked() -> None:
    """1-D: class 1 iff x > 0.9.  At x = 0.5 without clipping some noise crosses; clipped
    to [0, 0.8] no sample can."""
    net = linear_network(np.array([[0.0], [1.0]]), np.array([0.0, -0.9]))
    x = np.array([0.5])
    free = _g(net, sigma=0.3).counts(x, 2000, index=0, phase=Phase.ESTIMATION)
    clipped = _g(net, sigma=0.3, clip=(0.0, 0.8)).counts(x, 2000, index=0,
                                                          phase=Phase.ESTIMATION)
    assert free[1] > 0 and clipped[1] == 0


def test_results_carry_the_smoothing_guarantee() -> None:
    g = _g(alpha=0.01)
    c = g.certify(np.array([0.9, -0.9]), index=0, label=1)
    assert c.guarantee.kind == "probabilistic" and c.guarantee.confidence == pytest.approx(0.99)
    assert "smoothed classifier" in c.guarantee.statement
    assert "not the base network" in c.guarantee.statement
    assert not isinstance(c, Sandwich) and not hasattr(c, "lower_guarantee")
    assert g.predict(np.zeros(2), index=0).guarantee.of == "smoothed classifier"


@pytest.mark.parametrize("kw,match", [
    ({"sigma": 0.0}, "sigma must be a positive finite"),
    ({"sigma": -0.1}, "sigma must be a positive finite"),
    ({"sigma": float("nan")}, "sigma must be a positive finite"),
    ({"sigma": float("inf")}, "sigma must be a positive finite"),
    ({"sigma": "x"}, "sigma must be a number"),
    ({"alpha": 0.0}, r"alpha must lie in \(0, 1\)"),
    ({"alpha": 1.0}, r"alpha must lie in \(0, 1\)"),
    ({"alpha": float("nan")}, r"alpha must lie in \(0, 1\)"),
    ({"n0": 0}, "n0 must be an integer >= 1"),
    ({"n": 0, "n0": 0}, "n0 must be an integer >= 1"),
    ({"n": 10, "n0": 100}, r"n \(10\) must be at least n0 \(100\)"),
    ({"batch": 0}, "batch must be an integer >= 1"),
    ({"seed": -1}, "seed must be an integer >= 0"),
    ({"clip": (1.0, 0.0)}, "clip needs lo < hi"),
    ({"dtype": "float16"}, "dtype must be one of"),
], ids=repr)
def test_bad_options(kw: dict, match: str) -> None:
    with pytest.raises(InputError, match=match):
        SmoothingOptions(**{"sigma": 0.25, **kw})


def test_bad_points() -> None:
    g = _g()
    with pytest.raises(InputError, match="input has 3 values, the model takes 2"):
        g.certify(np.zeros(3))
    with pytest.raises(InputError, match="NaN or infinity"):
        g.predict(np.array([0.0, np.nan]))


def _cert(index: int, label: int, pred: int | None, radius: float | None) -> Certificate:
    return Certificate(index=index, label=label, prediction=pred, selected=pred or 0,
                       selection_count=1, count=1, n0=1, n=1, p_lower=0.9, radius=radius,
                       sigma=0.25, alpha=0.001, seconds=0.0)


def test_certified_accuracy_curve() -> None:
    certs = [_cert(0, 1, 1, 0.5), _cert(1, 1, 0, 0.9), _cert(2, 2, None, None),
             _cert(3, 0, 0, 0.2)]
    acc = certified_accuracy(certs, [0.0, 0.2, 0.21, 0.5, 0.51, 0.9])
    assert acc.tolist() == [0.5, 0.5, 0.25, 0.25, 0.0, 0.0]  # the wrong class never counts
    assert radius_grid(certs).tolist() == [0.0, 0.2, 0.5]
    rep = SmoothingReport("certify", SmoothingOptions(sigma=0.25), tuple(certs))
    r, a = rep.curve()
    assert r.tolist() == [0.0, 0.2, 0.5] and a.tolist() == [0.5, 0.5, 0.25]
    assert rep.abstained == 1 and rep.correct == 2
    with pytest.raises(ValueError, match="both a prediction and a radius, or neither"):
        _cert(0, 1, 1, None)
    with pytest.raises(ValueError, match="holds Prediction samples only"):
        SmoothingReport("predict", SmoothingOptions(sigma=0.25), tuple(certs))
