"""Gaussian-noise training (Cohen et al.'s augmentation): the objective, its recipe, and
a noise-trained model exported to ONNX and smoothed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.smoothing.models import CENTRES, blobs
from verinet.smoothing import SmoothingOptions, run_smoothing
from verinet.train import (
    GaussianNoise,
    Recipe,
    TrainConfig,
    accuracy,
    build_mlp,
    check_export,
    data_loss,
    fit,
    mlp_to_onnx,
    noise_recipe,
    stratified_split,
    to_network,
    train_recipe,
)
from verinet.train.objectives import OBJECTIVES
from verinet.types import InputError


def test_the_loss_is_the_data_loss_on_noisy_inputs() -> None:
    model = build_mlp(2, 3, (8,), seed=0)
    x, y = (torch.tensor(a) for a in blobs(16, 0))
    loss_fn = data_loss()
    got = GaussianNoise(sigma=0.3).loss(model, x, y, loss_fn, torch.Generator().manual_seed(5))
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(got, loss_fn(model(x + 0.3 * noise), y))
    clipped = GaussianNoise(sigma=0.3, clip=(0.0, 1.0)).loss(
        model, x, y, loss_fn, torch.Generator().manual_seed(5))
    assert torch.allclose(clipped, loss_fn(model(torch.clamp(x + 0.3 * noise, 0, 1)), y))


def test_registered_and_validated() -> None:
    assert OBJECTIVES["noise"] is GaussianNoise
    with pytest.raises(InputError, match="noise: sigma must be > 0"):
        GaussianNoise(sigma=0.0)
    with pytest.raises(InputError, match="noise: sigma must be > 0"):
        GaussianNoise(sigma=float("nan"))
    with pytest.raises(InputError, match="noise training needs sigma > 0"):
        Recipe(name="n", kind="noise")
    r = noise_recipe(0.25)
    assert r.name == "noise-0.25" and r.kind == "noise"
    assert r.objective() == GaussianNoise(sigma=0.25)
    assert "Gaussian noise augmentation sigma 0.25" in r.describe()


def test_noise_training_learns_the_noisy_task() -> None:
    """On blobs, the noise-trained model is deterministic from its seed, accurate on
    clean inputs, and under the noise as accurate as the Bayes-optimal rule (the nearest
    centre: equal isotropic clusters, equal priors) up to 2 points."""
    x, y = blobs(600, 0, spread=0.03)
    sigma, config = 0.25, TrainConfig(epochs=30, lr=1e-2, log_every=0)
    noisy = fit(build_mlp(2, 3, (16,), seed=1), x, y, config,
                objective=GaussianNoise(sigma=sigma))
    again = fit(build_mlp(2, 3, (16,), seed=1), x, y, config,
                objective=GaussianNoise(sigma=sigma))
    for a, b in zip(noisy.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    xt, yt = blobs(2000, 9, spread=0.03)
    xn = xt + np.random.default_rng(3).normal(0, sigma, xt.shape).astype(np.float32)
    bayes = float((np.argmin(((xn[:, None] - CENTRES[None]) ** 2).sum(-1), 1) == yt).mean())
    assert accuracy(noisy, xt, yt) > 0.95
    assert accuracy(noisy, xn, yt) >= bayes - 0.02


def test_recipe_trains_exports_and_certifies() -> None:
    x, y = blobs(400, 1)
    split = stratified_split(x, y, test_size=0.25, seed=0, name="blobs", n_classes=3)
    trained = train_recipe(noise_recipe(0.12, hidden=(16,), epochs=20), split,
                           TrainConfig(lr=1e-2, log_every=0))
    assert trained.test_accuracy > 0.9
    onnx_model = mlp_to_onnx(trained.model)
    check_export(onnx_model, trained.model, split.x_test)
    rep = run_smoothing(to_network(onnx_model), split.x_test[:10], split.y_test[:10],
                        SmoothingOptions(sigma=0.12, n0=50, n=1000))
    assert rep.correct >= 8
