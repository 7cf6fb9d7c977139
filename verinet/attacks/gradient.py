"""Fixed-epsilon L-inf gradient attacks: PGD (Madry et al.) and its special cases BIM
(I-FGSM, Kurakin et al.) and FGSM (Goodfellow et al.).

All three are one loop: ``x <- clip_region(x + alpha_t * sign(grad loss))`` with the
margin loss ``max_{j != l} f_j - f_l`` (or cross-entropy); the first adversarial point of
a sample (any restart) is kept and the sample leaves the batch.  Restarts run as one batch:
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
CHECK_EVERY = 4  # steps between checks for fooled samples
LOSSES = ("margin", "ce")


@dataclass(frozen=True, kw_only=True)
class PGD(Attack):
    """Projected gradient ascent in the L-inf ball.

    ``steps`` gradient steps per restart; ``restarts`` runs in total (restart 0 from
    ``x0``, the others from uniform random points when ``random_start``); the step is
    ``rel_stepsize * eps`` scaled by ``schedule`` (``cosine`` anneals to 0, ``step``
    divides by 10 at 50% and 75% of the steps).  A sample is dropped from the batch as soon
    as one of its restarts fools the model; the attack stops once every sample is fooled.
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
        out = x0.clone()  # the first adversarial point found per sample (x0: none yet)
        done = torch.zeros(n_samples, dtype=torch.bool, device=x.device)
        # The batch holds the rows of samples not yet fooled; it is compacted when a
        # quarter of it is done.
        rows = torch.arange(x.shape[0], device=x.device)
        state: tuple[Tensor, ...] = (x, lab, alpha, lo_r, hi_r)
        for t in range(self.steps + 1):
            xa, lab_a, alpha_a, lo_a, hi_a = state
            last = t == self.steps
            with torch.set_grad_enabled(not last):  # the last pass only checks
                xa = xa.requires_grad_(not last)
                logits = model(xa)
            adv = is_adversarial(logits, lab_a)
            if bool(adv.any()):  # bookkeeping only when something was fooled
                fooled = rows[adv] % n_samples
                new = ~done[fooled]
                out[fooled[new]] = xa.detach()[adv][new]
                done[fooled] = True
                keep = ~done[rows % n_samples]
                if not bool(keep.any()):
                    break
                compact = int(keep.sum()) <= 0.75 * keep.numel()
            else:
                compact = False
            if last:
                break
            if self.loss == "margin":
                obj = margin_loss(logits, lab_a)
            else:
                obj = F.cross_entropy(logits, lab_a, reduction="none")
            (g,) = torch.autograd.grad(obj.sum(), xa)
            with torch.no_grad():  # in place: x + a_t * sign(g), clipped to the region
                step = g.sign_().mul_(self.factor(t) * alpha_a).add_(xa.detach())
                state = (step.clamp_(lo_a, hi_a),) + state[1:]
            if compact:  # every step costs less than a compaction: only when a quarter left
                rows, state = rows[keep], tuple(v[keep] for v in state)
        return out


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
