"""Training objectives: standard, PGD adversarial training, the FGSM mixed objective and
Gaussian-noise augmentation.

Every objective maps a batch to a scalar loss through a *data loss* ``J(logits, targets)``
(cross-entropy with hard labels, or with soft labels for distillation, both at the
training temperature; see :mod:`verinet.train.loop`):

* :class:`Standard`: ``J(f(x), t)``.
* :class:`PGDTraining` (Madry et al., ICLR 2018): ``J(f(x'), t)`` with ``x'`` the
  inner maximisation of ``J`` over the L-inf ball of ``eps`` ∩ the input domain by
  ``steps`` projected sign-gradient steps of ``step_size`` (default ``2.5 eps / steps``)
  from a uniform random start in the ball (or from ``x`` without ``random_start``).
* :class:`FGSMMixed` (Goodfellow et al., ICLR 2015):
  ``alpha J(f(x), t) + (1 - alpha) J(f(x + eps sign(grad_x J(f(x), t))), t)``, the
  adversarial point clipped to the domain and held constant (no gradient through it).
* :class:`GaussianNoise` (Cohen et al., ICML 2019, the training of a base classifier for
  randomized smoothing): ``J(f(x + d), t)`` with ``d ~ N(0, sigma^2 I)`` drawn afresh for
  every batch, not clipped to the domain (as in the paper; ``clip`` to do so), so that
  ``f`` learns to classify the noisy inputs the smoothed classifier sees.

Perturbations are computed with the model's current weights, in whatever mode it is in
(the MLPs here have no dropout or batch norm), and only ``gen`` supplies randomness.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Protocol

import torch
from torch import Tensor

from verinet.types import InputError

DataLoss = Callable[[Tensor, Tensor], Tensor]
Domain = tuple[float, float]


class Objective(Protocol):
    name: ClassVar[str]

    def loss(self, model: torch.nn.Module, x: Tensor, t: Tensor, data_loss: DataLoss,
             gen: torch.Generator) -> Tensor: ...


def _check_eps(name: str, eps: float) -> None:
    if not (math.isfinite(eps) and eps > 0):
        raise InputError(f"{name}: eps must be > 0, got {eps}")


@dataclass(frozen=True)
class Standard:
    """Plain empirical risk: ``J(f(x), t)``."""

    name: ClassVar[str] = "standard"

    def loss(self, model: torch.nn.Module, x: Tensor, t: Tensor, data_loss: DataLoss,
             gen: torch.Generator) -> Tensor:
        return data_loss(model(x), t)


@dataclass(frozen=True, kw_only=True)
class PGDTraining:
    """Madry's min-max objective with a PGD inner maximisation (see the module doc)."""

    name: ClassVar[str] = "pgd"

    eps: float
    steps: int = 10
    step_size: float | None = None
    random_start: bool = True
    domain: Domain = (0.0, 1.0)

    def __post_init__(self) -> None:
        _check_eps(self.name, self.eps)
        if self.steps < 1:
            raise InputError(f"{self.name}: steps must be >= 1")
        if self.step_size is not None and not (math.isfinite(self.step_size)
                                               and self.step_size > 0):
            raise InputError(f"{self.name}: step_size must be > 0")

    @property
    def alpha(self) -> float:
        return self.step_size if self.step_size is not None else 2.5 * self.eps / self.steps

    def loss(self, model: torch.nn.Module, x: Tensor, t: Tensor, data_loss: DataLoss,
             gen: torch.Generator) -> Tensor:
        x_adv = pgd_perturb(model, x, t, data_loss, eps=self.eps, steps=self.steps,
                            step_size=self.alpha, random_start=self.random_start,
                            domain=self.domain, gen=gen)
        return data_loss(model(x_adv), t)


@dataclass(frozen=True, kw_only=True)
class FGSMMixed:
    """Goodfellow's mixed objective with weight ``alpha`` on the clean loss."""

    name: ClassVar[str] = "fgsm"

    eps: float
    alpha: float = 0.5
    domain: Domain = (0.0, 1.0)

    def __post_init__(self) -> None:
        _check_eps(self.name, self.eps)
        if not 0 <= self.alpha <= 1:
            raise InputError(f"{self.name}: alpha must lie in [0, 1], got {self.alpha}")

    def loss(self, model: torch.nn.Module, x: Tensor, t: Tensor, data_loss: DataLoss,
             gen: torch.Generator) -> Tensor:
        xr = x.detach().clone().requires_grad_(True)
        clean = data_loss(model(xr), t)
        (g,) = torch.autograd.grad(clean, xr, retain_graph=True)
        x_adv = torch.clamp(x + self.eps * torch.sign(g), *self.domain).detach()
        return self.alpha * clean + (1 - self.alpha) * data_loss(model(x_adv), t)


@dataclass(frozen=True, kw_only=True)
class GaussianNoise:
    """Cohen et al.'s noise augmentation with std ``sigma`` (see the module doc)."""

    name: ClassVar[str] = "noise"

    sigma: float
    clip: Domain | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.sigma) and self.sigma > 0):
            raise InputError(f"{self.name}: sigma must be > 0, got {self.sigma}")

    def loss(self, model: torch.nn.Module, x: Tensor, t: Tensor, data_loss: DataLoss,
             gen: torch.Generator) -> Tensor:
        noise = torch.randn(x.shape, generator=gen, dtype=x.dtype, device=x.device)
        xn = x + self.sigma * noise
        if self.clip is not None:
            xn = torch.clamp(xn, *self.clip)
        return data_loss(model(xn), t)


def pgd_perturb(model: torch.nn.Module, x: Tensor, t: Tensor, data_loss: DataLoss, *,
                eps: float, steps: int, step_size: float, random_start: bool,
                domain: Domain, gen: torch.Generator) -> Tensor:
    """The PGD maximiser of ``data_loss`` over ``{|x' - x|_inf <= eps} ∩ domain``
    (detached; no parameter gradients are accumulated)."""
    lo = torch.clamp(x - eps, *domain)
    hi = torch.clamp(x + eps, *domain)
    x = x.detach()
    if random_start:
        u = torch.rand(x.shape, generator=gen, dtype=x.dtype, device=x.device)
        xa = lo + u * (hi - lo)
    else:
        xa = x.clone()
    for _ in range(steps):
        xa.requires_grad_(True)
        (g,) = torch.autograd.grad(data_loss(model(xa), t), xa)
        xa = torch.minimum(torch.maximum(xa.detach() + step_size * torch.sign(g), lo), hi)
    return xa.detach()


OBJECTIVES: dict[str, type] = {cls.name: cls for cls in (Standard, PGDTraining, FGSMMixed,
                                                         GaussianNoise)}
