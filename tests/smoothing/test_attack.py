"""PGD on the smoothed classifier (Salman et al.) never finds an adversarial example
inside a radius certified by CERTIFY, and does find them somewhat beyond it (so the
first check is not vacuous)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.smoothing.models import blobs, trained_blobs
from verinet.smoothing import SmoothedClassifier, SmoothedPGD, SmoothingOptions, run_smoothing
from verinet.types import InputError

SIGMA = 0.12


@pytest.fixture(scope="module")
def certified():
    """A noise-trained 2-16-3 MLP and CERTIFY on 20 blob samples (~1 s)."""
    _, net = trained_blobs(SIGMA)
    x, y = blobs(20, 11)
    opts = SmoothingOptions(sigma=SIGMA, n0=100, n=2000)
    rep = run_smoothing(net, x, y, opts)
    ok = [c for c in rep.certificates if c.correct]
    assert len(ok) >= 15
    return SmoothedClassifier(net, opts), x, ok


def _attack(g, x, certs, eps):
    idx = [c.index for c in certs]
    return SmoothedPGD(eps=eps, steps=20, m=64)(g, x[idx], [c.prediction for c in certs],
                                                indices=idx)


def test_no_adversarial_example_inside_the_certified_radius(certified) -> None:
    g, x, ok = certified
    for c in ok:
        res = _attack(g, x, [c], c.radius)
        assert res.distance[0] <= c.radius
        assert not res.success[0], f"sample {c.index}: PREDICT says {res.predictions[0]}"


def test_the_attack_succeeds_beyond_the_radius(certified) -> None:
    g, x, ok = certified
    far = [bool(_attack(g, x, [c], 2.0 * c.radius).success[0]) for c in ok]
    assert sum(far) >= len(ok) // 2


def test_attack_stays_in_the_ball_and_is_independent_of_its_batch(certified) -> None:
    g, x, ok = certified
    both = _attack(g, x, ok[:3], 0.2)
    assert (both.distance <= 0.2).all()
    for k, c in enumerate(ok[:3]):
        alone = _attack(g, x, [c], 0.2)
        np.testing.assert_allclose(alone.x[0], both.x[k], atol=1e-6)
    clipped = SmoothedPGD(eps=0.5, steps=5, m=8, domain=(0.1, 0.9))(
        g, x[[0]], [0], indices=[0])
    assert ((clipped.x >= 0.1) & (clipped.x <= 0.9)).all()
    zero = SmoothedPGD(eps=0.0)(g, x[[0]], [0])
    assert np.array_equal(zero.x, x[[0]].astype(np.float64))


def test_bad_attack_options() -> None:
    with pytest.raises(InputError, match="eps must be a finite number >= 0"):
        SmoothedPGD(eps=-1.0)
    with pytest.raises(InputError, match="steps and m must be >= 1"):
        SmoothedPGD(eps=1.0, m=0)
    with pytest.raises(InputError, match="step_size must be > 0"):
        SmoothedPGD(eps=1.0, step_size=0.0)


@pytest.mark.slow
def test_digits_noise_model_no_adversarial_example_inside_the_radius() -> None:
    """The heavier variant: the benchmark's digits model (sigma 0.25), 30 samples, CERTIFY
    n = 10,000, PGD 50 steps of 128 draws at each certified radius."""
    pytest.importorskip("sklearn")
    import torch

    from verinet.train import (
        TrainConfig,
        digits,
        mlp_to_onnx,
        noise_recipe,
        to_network,
        train_recipe,
    )

    torch.set_num_threads(1)
    split = digits()
    trained = train_recipe(noise_recipe(0.25), split, TrainConfig(log_every=0))
    net = to_network(mlp_to_onnx(trained.model))
    opts = SmoothingOptions(sigma=0.25, n0=100, n=10_000)
    rep = run_smoothing(net, split.x_test[:30], split.y_test[:30], opts)
    g = SmoothedClassifier(net, opts)
    ok = [c for c in rep.certificates if c.correct]
    assert len(ok) >= 20
    for c in ok:
        res = SmoothedPGD(eps=c.radius, steps=50, m=128)(
            g, split.x_test[[c.index]], [c.prediction], indices=[c.index])
        assert not res.success[0]
