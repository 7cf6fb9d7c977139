"""Fixed-epsilon L-inf gradient attacks: PGD (Madry et al.) and its special cases BIM
(I-FGSM, Kurakin et al.) and FGSM (Goodfellow et al.).

All three are one loop: ``x <- clip_region(x + alpha_t * sign(grad loss))`` with the
margin loss ``max_{j != l} f_j - f_l`` (or cross-entropy), keeping per sample the point
with the largest margin loss over iterations and restarts.  Restarts run as one batch:
the samples are repeated R times, restart 0 starting at ``x0`` and the others uniformly
in the region.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from verinet.attacks.base import Attack, Model, is_adversarial, margin_loss
from verinet.types import InputError

SCHEDULES = ("constant", "cosine", "step")
LOSSES = ("margin", "ce")


@dataclass(frozen=True, kw_only=True)
class PGD(Attack):
    """Projected gradient ascent in the L-inf ball.

    ``steps`` gradient steps per restart; ``restarts`` runs in total (restart 0 from
    ``x0``, the others from uniform random points when ``random_start``); the step is
    ``rel_stepsize * eps`` scaled by ``schedule`` (``cosine`` anneals to 0, ``step``
    divides by 10 at 50% and 75% of the steps).  Stops early once every sample is fooled.
    """

    name: ClassVar[str] = "pgd"
    minimal: ClassVar[bool] = False

    steps: int = 100
    restarts: int = 10
    rel_stepsize: float = 0.1
    schedule: str = "cosine"
    loss: str = "margin"
    random_start: bool = True

    def __post_init__(self) -> None:
        if self.steps < 1 or self.restarts < 1:
            raise InputError(f"{self.name}: steps and restarts must be >= 1")
        if not (math.isfinite(self.rel_stepsize) and self.rel_stepsize > 0):
            raise InputError(f"{self.name}: rel_stepsize must be > 0, got {self.rel_stepsize}")
        if self.schedule not in SCHEDULES:
            raise InputError(f"{self.name}: schedule must be one of {SCHEDULES}")
        if self.loss not in LOSSES:
            raise InputError(f"{self.name}: loss must be one of {LOSSES}")

    def factor(self, t: int) -> float:
        """Step-size multiplier of step ``t`` (0-based) of the schedule."""
        if self.schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * t / self.steps))
        if self.schedule == "step":
            return 1.0 if t < self.steps // 2 else 0.1 if t < (3 * self.steps) // 4 else 0.01
        return 1.0

    def run(self, model: Model, x0: Tensor, labels: Tensor, eps: Tensor | None,
            lo: Tensor, hi: Tensor, gen: torch.Generator) -> Tensor:
        assert eps is not None  # __call__ requires eps for fixed-epsilon attacks
        n_samples, r = x0.shape[0], self.restarts
        x0r, lo_r, hi_r = x0.repeat(r, 1), lo.repeat(r, 1), hi.repeat(r, 1)
        lab = labels.repeat(r)
        alpha = (self.rel_stepsize * eps).repeat(r)[:, None]
        x = x0r.clone()
        if self.random_start and r > 1:
            u = torch.rand(x[n_samples:].shape, generator=gen, dtype=x.dtype, device=x.device)
            x[n_samples:] = lo_r[n_samples:] + u * (hi_r - lo_r)[n_samples:]
        best_x = x.clone()
        best = torch.full((x.shape[0],), float("-inf"), dtype=x.dtype, device=x.device)
        for t in range(self.steps + 1):
            x.requires_grad_(True)
            logits = model(x)
            margin = margin_loss(logits, lab)
            better = margin.detach() > best
            best = torch.where(better, margin.detach(), best)
            best_x = torch.where(better[:, None], x.detach(), best_x)
            fooled = is_adversarial(logits, lab).view(r, n_samples).any(dim=0)
            if t == self.steps or bool(fooled.all()):
                break
            obj = margin if self.loss == "margin" else F.cross_entropy(logits, lab,
                                                                       reduction="none")
            (g,) = torch.autograd.grad(obj.sum(), x)
            with torch.no_grad():
                x = x + (self.factor(t) * alpha) * torch.sign(g)
                x = torch.minimum(torch.maximum(x, lo_r), hi_r)
        pick = best.view(r, n_samples).argmax(dim=0)
        return best_x.view(r, n_samples, -1)[pick, torch.arange(n_samples, device=x.device)]


@dataclass(frozen=True, kw_only=True)
class BIM(PGD):
    """Basic iterative method / I-FGSM: ``steps`` sign steps of ``rel_stepsize * eps``
    from ``x0``, projected after each step; no restarts."""

    name: ClassVar[str] = "bim"

    steps: int = 10
    rel_stepsize: float = 0.1
    restarts: int = field(default=1, init=False, repr=False)
    schedule: str = field(default="constant", init=False, repr=False)
    random_start: bool = field(default=False, init=False, repr=False)


@dataclass(frozen=True, kw_only=True)
class FGSM(PGD):
    """Fast gradient sign method: one step ``x0 + eps * sign(grad)``, clipped."""

    name: ClassVar[str] = "fgsm"

    steps: int = field(default=1, init=False, repr=False)
    restarts: int = field(default=1, init=False, repr=False)
    rel_stepsize: float = field(default=1.0, init=False, repr=False)
    schedule: str = field(default="constant", init=False, repr=False)
    random_start: bool = field(default=False, init=False, repr=False)
