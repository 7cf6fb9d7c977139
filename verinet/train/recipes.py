"""Recipes: named models to train and compare (normal, adversarially trained, distilled,
noise-trained, and several widths and depths), and one function that trains any of them.

A :class:`Recipe` is data: the hidden widths, the kind (``standard``, ``pgd``, ``fgsm``,
``distill`` or ``noise``), its strength (``eps`` for the adversarial kinds;
``temperature`` for distillation; ``sigma`` for Gaussian-noise training, the base
classifier of randomized smoothing) and, optionally, its own number of epochs.
:data:`DEFAULT_RECIPES` is the set ``scripts/train_defended.py`` trains on the digits for
the robustness study; :func:`noise_recipe` makes the smoothing benchmark's model.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace

import numpy as np
import torch

from verinet.ir.graph import Network
from verinet.train.data import Split
from verinet.train.distill import distill
from verinet.train.loop import TrainConfig, accuracy, fit
from verinet.train.models import build_mlp
from verinet.train.objectives import FGSMMixed, GaussianNoise, Objective, PGDTraining, Standard
from verinet.types import InputError

log = logging.getLogger(__name__)

KINDS = ("standard", "pgd", "fgsm", "distill", "noise")


@dataclass(frozen=True, kw_only=True)
class Recipe:
    """One model to train.  ``eps``: the L-inf radius of ``pgd``/``fgsm`` training (raw
    input units); ``steps``: PGD steps; ``alpha``: the clean weight of ``fgsm``;
    ``temperature``: distillation's T; ``sigma``: the noise std of ``noise`` training
    (raw input units); ``epochs``: overrides the config's."""

    name: str
    hidden: tuple[int, ...] = (32, 32)
    kind: str = "standard"
    eps: float = 0.0
    steps: int = 10
    alpha: float = 0.5
    temperature: float = 1.0
    sigma: float = 0.0
    epochs: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InputError(f"recipe {self.name}: kind must be one of {KINDS}")
        if self.kind in ("pgd", "fgsm") and not self.eps > 0:
            raise InputError(f"recipe {self.name}: {self.kind} training needs eps > 0")
        if self.kind == "noise" and not self.sigma > 0:
            raise InputError(f"recipe {self.name}: noise training needs sigma > 0")
        if not self.name or any(c in self.name for c in "/\\ "):
            raise InputError(f"bad recipe name {self.name!r}")

    def objective(self) -> Objective:
        if self.kind == "pgd":
            return PGDTraining(eps=self.eps, steps=self.steps)
        if self.kind == "fgsm":
            return FGSMMixed(eps=self.eps, alpha=self.alpha)
        if self.kind == "noise":
            return GaussianNoise(sigma=self.sigma)
        return Standard()

    def describe(self) -> str:
        arch = "x".join(map(str, self.hidden)) or "linear"
        if self.kind == "pgd":
            return f"MLP {arch}, PGD adversarial training eps {self.eps} ({self.steps} steps)"
        if self.kind == "fgsm":
            return f"MLP {arch}, FGSM mixed objective eps {self.eps} alpha {self.alpha}"
        if self.kind == "noise":
            return f"MLP {arch}, Gaussian noise augmentation sigma {self.sigma}"
        if self.kind == "distill":
            return f"MLP {arch}, defensive distillation T={self.temperature}, deployed at T=1"
        return f"MLP {arch}, standard training"


DEFAULT_RECIPES: tuple[Recipe, ...] = (
    Recipe(name="normal"),
    Recipe(name="pgd-0.05", kind="pgd", eps=0.05),
    Recipe(name="pgd-0.1", kind="pgd", eps=0.1),
    Recipe(name="fgsm-0.1", kind="fgsm", eps=0.1),
    Recipe(name="distill-T1", kind="distill", temperature=1.0),
    Recipe(name="distill-T10", kind="distill", temperature=10.0),
    Recipe(name="distill-T20", kind="distill", temperature=20.0),
    Recipe(name="distill-T100", kind="distill", temperature=100.0),
    Recipe(name="mlp-16", hidden=(16,)),
    Recipe(name="mlp-64x64", hidden=(64, 64)),
    Recipe(name="mlp-32x32x32", hidden=(32, 32, 32)),
)


def noise_recipe(sigma: float, *, hidden: tuple[int, ...] = (32, 32),
                 epochs: int | None = None) -> Recipe:
    """``noise-<sigma>``: an MLP trained with Gaussian noise of std ``sigma``, the base
    classifier of a smoothed model (:mod:`verinet.smoothing`)."""
    return Recipe(name=f"noise-{sigma:g}", hidden=hidden, kind="noise", sigma=sigma,
                  epochs=epochs)


@dataclass(frozen=True)
class Trained:
    """A trained model (the one to deploy: the student for distillation), its recipe,
    accuracies and wall-clock training seconds."""

    recipe: Recipe
    model: torch.nn.Sequential
    train_accuracy: float
    test_accuracy: float
    seconds: float


def train_recipe(recipe: Recipe, split: Split, config: TrainConfig) -> Trained:
    """Train ``recipe`` on ``split`` with ``config`` (its seed initialises the model)."""
    if recipe.epochs is not None:
        config = replace(config, epochs=recipe.epochs)
    start = time.perf_counter()
    x, y = split.x_train, split.y_train
    if recipe.kind == "distill":
        model = distill(x, y, split.n_classes, hidden=recipe.hidden,
                        temperature=recipe.temperature, config=config).student
    else:
        model = build_mlp(split.n_inputs, split.n_classes, recipe.hidden, seed=config.seed)
        fit(model, x, y, config, objective=recipe.objective())
    seconds = time.perf_counter() - start
    tr, te = accuracy(model, x, y), accuracy(model, split.x_test, split.y_test)
    log.info("%s: %s, train %.4f, test %.4f, %.1f s", recipe.name, recipe.describe(), tr, te,
             seconds)
    return Trained(recipe, model, tr, te, seconds)


def robust_accuracy(network: Network, x: np.ndarray, y: np.ndarray, eps: float, *,
                    steps: int = 50, restarts: int = 5, seed: int = 0) -> float:
    """Share of samples the IR ``network`` classifies correctly and verinet's PGD (margin
    loss, ``restarts`` x ``steps``) cannot fool at L-inf radius ``eps`` in [0, 1]."""
    from verinet.attacks import PGD

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    correct = np.argmax(network.evaluate(x), axis=1) == y
    if eps <= 0 or not correct.any():
        return float(correct.mean())
    res = PGD(steps=steps, restarts=restarts)(network, x[correct], y[correct], eps=eps,
                                              rng=np.random.default_rng(seed))
    return float((~res.success).sum() / len(y))
