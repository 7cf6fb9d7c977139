"""L-inf DeepFool (Moosavi-Dezfooli et al., CVPR 2016), minimal-norm.

Each step linearises the margins ``g_j = f_j - f_l`` of the candidate classes at the
current point and takes the smallest L-inf step onto the closest linearised boundary:
``|g_j| / ||w_j||_1`` along ``sign(w_j)`` (the L1 norm is the dual of L-inf).  The total
perturbation is overshot by ``1 + overshoot`` and clipped to the region; a sample stops
at its first adversarial point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from verinet.attacks.base import Attack, BestAdversarial, Model
from verinet.types import InputError


@dataclass(frozen=True, kw_only=True)
class DeepFool(Attack):
    """``steps`` linearisation steps; ``candidates``: the label plus the
    ``candidates - 1`` highest other logits at ``x0`` are considered (None: all)."""

    name: ClassVar[str] = "deepfool"
    minimal: ClassVar[bool] = True

    steps: int = 50
    overshoot: float = 0.02
    candidates: int | None = 10

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise InputError(f"{self.name}: steps must be >= 1")
        if not (math.isfinite(self.overshoot) and self.overshoot >= 0):
            raise InputError(f"{self.name}: overshoot must be >= 0, got {self.overshoot}")
        if self.candidates is not None and self.candidates < 2:
            raise InputError(f"{self.name}: candidates must be >= 2 or None")

    def classes(self, logits: Tensor, labels: Tensor) -> Tensor:
        """(N, k) class indices: the label first, then the top other classes."""
        k = logits.shape[1] if self.candidates is None else min(self.candidates,
                                                                  logits.shape[1])
        others = logits.scatter(1, labels[:, None], float("-inf"))
        top = others.topk(k - 1, dim=1).indices
        return torch.cat([labels[:, None], top], dim=1)

    def run(self, model: Model, x0: Tensor, labels: Tensor, eps: Tensor | None,
            lo: Tensor, hi: Tensor, gen: torch.Generator) -> Tensor:
        best = BestAdversarial(x0)
        with torch.no_grad():
            cls = self.classes(model(x0), labels)
        r_tot = torch.zeros_like(x0)
        x = x0.clone()
        for t in range(self.steps + 1):
            x.requires_grad_(True)
            logits = model(x)
            best.update(x, logits, labels)
            active = ~best.found
            if t == self.steps or not bool(active.any()):
                break
            step = self._step(logits, cls, x)
            with torch.no_grad():
                r_tot = r_tot + torch.where(active[:, None], step, torch.zeros_like(step))
                x = torch.minimum(torch.maximum(x0 + (1 + self.overshoot) * r_tot, lo), hi)
        return best.x

    @staticmethod
    def _step(logits: Tensor, cls: Tensor, x: Tensor) -> Tensor:
        """The minimal L-inf step (N, n) onto the closest linearised boundary."""
        f = logits.gather(1, cls)
        g = f[:, 1:] - f[:, :1]  # (N, k-1), < 0 while correctly classified
        grads = []
        for j in range(g.shape[1]):
            (w,) = torch.autograd.grad(g[:, j].sum(), x, retain_graph=j < g.shape[1] - 1)
            grads.append(w)
        w = torch.stack(grads, dim=1)  # (N, k-1, n)
        g = g.detach()
        dist = g.abs() / w.abs().sum(dim=2).clamp_min(1e-12)
        closest = dist.argmin(dim=1)
        rows = torch.arange(x.shape[0], device=x.device)
        w_c = w[rows, closest]
        size = dist[rows, closest] + 1e-4 / w_c.abs().sum(dim=1).clamp_min(1e-12)
        return size[:, None] * torch.sign(w_c)
