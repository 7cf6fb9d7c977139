"""Fast Minimum-Norm attack, L-inf (Pintor et al., NeurIPS 2021), minimal-norm.

FMN keeps a per-sample ball radius ``eps_k``: it shrinks to
``min(eps (1 - gamma), best)`` while the iterate is adversarial, grows by
``1 + gamma`` when it is not (once an adversarial point was seen), and before that
extrapolates to ``||delta|| + |loss| / ||grad||_1`` (the linearised distance to the
boundary).  Each step moves ``delta`` along the normalised gradient of the margin loss,
then projects onto the ball and the region; ``alpha`` and ``gamma`` follow cosine
annealing.  The best adversarial point is kept.

L-inf specifics of this implementation: the normalised gradient is ``sign(grad)`` and
the step is ``alpha_k * eps_k`` (``alpha`` is relative to the current radius, so the
defaults do not depend on the domain's scale).  Starting points replace the paper's
``starting_points`` argument: with ``init="deepfool"`` (default) the first run starts
from a short DeepFool run; wherever a starting point ``x1`` is adversarial, a bisection
on the radius of the L-inf projection of ``x1`` onto balls around ``x0`` gives the
initial ``delta`` and ``eps``.  Further restarts and class-targeted runs (batched) avoid
the local optima a single run falls into; on random 2-layer ReLU MLPs the defaults come
within 3% of the exact (MILP) minimal radius on every sample measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from verinet.attacks.base import Attack, BestAdversarial, Model, linf, margin_loss
from verinet.attacks.deepfool import DeepFool
from verinet.types import InputError

INITS = ("deepfool", "zero")


@dataclass(frozen=True, kw_only=True)
class FMN(Attack):
    """``steps`` iterations; ``alpha`` anneals from ``alpha_init`` to ``alpha_final``
    (default ``alpha_init / 100``), ``gamma`` from ``gamma_init`` to ``gamma_final``.

    ``init``: ``"deepfool"`` (restart 0 warm-starts from ``init_steps`` DeepFool steps and
    ``binary_steps`` bisection steps) or ``"zero"``.  ``restarts`` starting points per
    sample (the DeepFool point, ``x0``, then uniform random points in the region, each
    bisected towards ``x0`` when adversarial); each runs untargeted and, with
    ``targeted = k``, also towards each of the ``k`` highest other classes at ``x0``
    (loss ``f_t - f_l``).  All ``restarts * (1 + k)`` runs are one batch; the smallest
    adversarial distance per sample wins.
    """

    name: ClassVar[str] = "fmn"
    minimal: ClassVar[bool] = True

    steps: int = 200
    alpha_init: float = 1.0
    alpha_final: float | None = None
    gamma_init: float = 0.05
    gamma_final: float = 0.001
    init: str = "deepfool"
    init_steps: int = 20
    binary_steps: int = 10
    restarts: int = 3
    targeted: int = 3

    def __post_init__(self) -> None:
        if min(self.steps, self.init_steps, self.restarts) < 1:
            raise InputError(f"{self.name}: steps, init_steps and restarts must be >= 1")
        if self.binary_steps < 0 or self.targeted < 0:
            raise InputError(f"{self.name}: binary_steps and targeted must be >= 0")
        alphas = (self.alpha_init, self.alpha_init if self.alpha_final is None
                  else self.alpha_final)
        if not all(math.isfinite(a) and a > 0 for a in alphas):
            raise InputError(f"{self.name}: step sizes must be > 0")
        if not (0 < self.gamma_final <= self.gamma_init < 1):
            raise InputError(f"{self.name}: need 0 < gamma_final <= gamma_init < 1")
        if self.init not in INITS:
            raise InputError(f"{self.name}: init must be one of {INITS}")

    def run(self, model: Model, x0: Tensor, labels: Tensor, eps: Tensor | None,
            lo: Tensor, hi: Tensor, gen: torch.Generator) -> Tensor:
        n = x0.shape[0]
        starts = self._starts(model, x0, labels, eps, lo, hi, gen)
        targets = [torch.full_like(labels, -1)]  # -1: untargeted
        if self.targeted:
            with torch.no_grad():
                cls = DeepFool(candidates=self.targeted + 1).classes(model(x0), labels)
            targets += list(cls[:, 1:].T)
        copies = [(s, t) for t in targets for s in starts]
        c = len(copies)
        best = self._search(model, x0.repeat(c, 1), labels.repeat(c),
                            torch.cat([t for _, t in copies]), lo.repeat(c, 1), hi.repeat(c, 1),
                            torch.cat([s for s, _ in copies]))
        pick = best.dist.view(c, n).argmin(dim=0)
        return best.x.view(c, n, -1)[pick, torch.arange(n, device=x0.device)]

    def _starts(self, model: Model, x0: Tensor, labels: Tensor, eps: Tensor | None,
                lo: Tensor, hi: Tensor, gen: torch.Generator) -> list[Tensor]:
        """``restarts`` starting points (N, n): DeepFool's point (``init="deepfool"``),
        ``x0``, then uniform random points in the region."""
        starts = [x0]
        if self.init == "deepfool":
            starts.insert(0, DeepFool(steps=self.init_steps).run(model, x0, labels, eps, lo, hi,
                                                                  gen))
        starts = starts[:self.restarts]
        while len(starts) < self.restarts:
            u = torch.rand(x0.shape, generator=gen, dtype=x0.dtype, device=x0.device)
            starts.append(lo + u * (hi - lo))
        return starts

    def _search(self, model: Model, x0: Tensor, labels: Tensor, targets: Tensor,
                lo: Tensor, hi: Tensor, x1: Tensor) -> BestAdversarial:
        """The FMN iteration on a batch (B, n) from starting points ``x1``; ``targets``
        (B,) is a class index or -1 (untargeted).  Returns the best adversarial points."""
        best = BestAdversarial(x0)
        delta, radius = self._start(model, x0, labels, x1, best)
        found = best.found.clone()
        worst = torch.maximum(hi - x0, x0 - lo).amax(dim=1)
        a0 = self.alpha_init
        a1 = a0 / 100 if self.alpha_final is None else self.alpha_final
        for k in range(self.steps + 1):
            x = (x0 + delta).requires_grad_(True)
            logits = model(x)
            adv = best.update(x, logits, labels)
            if k == self.steps:
                break
            found |= adv
            loss = _loss(logits, labels, targets)
            (g,) = torch.autograd.grad(loss.sum(), x)
            cos = 0.5 * (1 + math.cos(math.pi * k / self.steps))
            alpha = a1 + (a0 - a1) * cos
            gamma = self.gamma_final + (self.gamma_init - self.gamma_final) * cos
            with torch.no_grad():
                to_boundary = loss.abs() / g.abs().sum(dim=1).clamp_min(1e-12)
                grown = torch.where(found, radius * (1 + gamma),
                                    linf(x, x0) + to_boundary)
                radius = torch.where(adv, torch.minimum(radius * (1 - gamma), best.dist),
                                     grown)
                radius = torch.minimum(radius, worst)
                delta = delta + (alpha * radius)[:, None] * torch.sign(g)
                delta = torch.maximum(torch.minimum(delta, radius[:, None]), -radius[:, None])
                delta = torch.minimum(torch.maximum(x0 + delta, lo), hi) - x0
        return best

    def _start(self, model: Model, x0: Tensor, labels: Tensor, x1: Tensor,
               best: BestAdversarial) -> tuple[Tensor, Tensor]:
        """Initial ``delta`` (N, n) and radius (N,): bisection towards ``x1`` where it is
        adversarial, else ``delta = x1 - x0`` and an infinite radius."""
        with torch.no_grad():
            ok = best.update(x1, model(x1), labels)
            d1 = linf(x1, x0)
            low, up = torch.zeros_like(d1), torch.ones_like(d1)
            for _ in range(self.binary_steps):
                mid = (low + up) / 2
                xm = _project(x0, x1, mid * d1)
                adv = best.update(xm, model(xm), labels)
                up, low = torch.where(adv, mid, up), torch.where(adv, low, mid)
            delta = torch.where(ok[:, None], _project(x0, x1, up * d1), x1) - x0
            radius = torch.where(ok, linf(x0 + delta, x0), torch.full_like(d1, float("inf")))
        return delta, radius


def _loss(logits: Tensor, labels: Tensor, targets: Tensor) -> Tensor:
    """``f_t - f_l`` where ``targets >= 0``, else the untargeted margin loss (N,)."""
    own = logits.gather(1, labels[:, None])[:, 0]
    toward = logits.gather(1, targets.clamp_min(0)[:, None])[:, 0] - own
    return torch.where(targets >= 0, toward, margin_loss(logits, labels))


def _project(x0: Tensor, x1: Tensor, r: Tensor) -> Tensor:
    """The L-inf projection of ``x1`` onto the balls of radius ``r`` (N,) around ``x0``."""
    return x0 + torch.maximum(torch.minimum(x1 - x0, r[:, None]), -r[:, None])
