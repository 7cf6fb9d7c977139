"""Elastic-net attack EAD (Chen et al., AAAI 2018), L1, minimal-norm.

EAD minimises ``c * f(x) + ||x - x0||_2^2 + beta * ||x - x0||_1`` over the region box
with ``f(x) = max(f_l(x) - max_{j != l} f_j(x), -kappa)``.  The smooth part
``g = c f + ||x - x0||_2^2`` takes gradient steps, the L1 part its proximal operator,
projected onto the box (the *projected shrinkage-thresholding* ``S_beta``, threshold
``beta`` itself as in the original code):

* ``z - x0 > beta``: ``min(z - beta, hi)``; ``z - x0 < -beta``: ``max(z + beta, lo)``;
  otherwise ``x0``.

With ``fista`` (the original's default) the gradient is taken at the slack point
``y_k = x_k + k / (k + 3) (x_k - x_{k-1})``, else at ``x_k`` (ISTA).  The step size
decays as ``lr * (1 - k / steps) ** 0.5``.  A per-sample binary search on ``c`` starts
at ``initial_const`` (x10 while no constant has succeeded), and among the adversarial
iterates the best is kept by the decision ``rule``: ``"en"`` (smallest
``beta ||d||_1 + ||d||_2^2``) or ``"l1"`` (smallest ``||d||_1``).

Conventions in verinet: ``eps`` is an optional L-inf cap (the region is the L-inf ball
∩ domain, as for every attack; None searches the whole domain); the reported
``AttackResult.distance`` is ``||x - x0||_1``.  Defaults are the paper's: 9 binary
steps, 1000 iterations, ``c0 = 1e-3``, ``beta = 1e-3``, ``lr = 1e-2``, ``kappa = 0``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from verinet.attacks.base import Attack, Model, is_adversarial, margin_loss
from verinet.types import InputError

RULES = ("en", "l1")
_BIG = 1e10


def shrink(z: Tensor, x0: Tensor, beta: float, lo: Tensor, hi: Tensor) -> Tensor:
    """The projected shrinkage-thresholding operator ``S_beta`` (elementwise)."""
    up = torch.minimum(z - beta, hi)
    down = torch.maximum(z + beta, lo)
    d = z - x0
    return torch.where(d > beta, up, torch.where(d < -beta, down, x0))


@dataclass(frozen=True, kw_only=True)
class EAD(Attack):
    """``binary_steps`` searches on ``c`` from ``initial_const``, up to ``steps``
    (F)ISTA iterations each with L1 weight ``beta`` and initial step ``lr``;
    ``abort_early`` stops a run whose objective stalls over a tenth of the steps."""

    name: ClassVar[str] = "ead"
    minimal: ClassVar[bool] = True
    norm: ClassVar[str] = "l1"

    steps: int = 1000
    binary_steps: int = 9
    initial_const: float = 1e-3
    beta: float = 1e-3
    lr: float = 1e-2
    kappa: float = 0.0
    rule: str = "en"
    fista: bool = True
    abort_early: bool = True

    def __post_init__(self) -> None:
        if self.steps < 1 or self.binary_steps < 1:
            raise InputError(f"{self.name}: steps and binary_steps must be >= 1")
        for what, v in (("initial_const", self.initial_const), ("lr", self.lr)):
            if not (math.isfinite(v) and v > 0):
                raise InputError(f"{self.name}: {what} must be > 0, got {v}")
        if not (math.isfinite(self.beta) and self.beta >= 0 and self.kappa >= 0):
            raise InputError(f"{self.name}: beta and kappa must be >= 0")
        if self.rule not in RULES:
            raise InputError(f"{self.name}: rule must be one of {RULES}, got {self.rule!r}")

    def score_en(self, x: Tensor, x0: Tensor) -> Tensor:
        """The elastic-net distance ``beta ||x - x0||_1 + ||x - x0||_2^2`` per row (N,)."""
        d = x - x0
        return self.beta * d.abs().sum(dim=1) + (d * d).sum(dim=1)

    def score(self, x: Tensor, x0: Tensor) -> Tensor:
        """The decision rule's distance per row (N,)."""
        return (x - x0).abs().sum(dim=1) if self.rule == "l1" else self.score_en(x, x0)

    def run(self, model: Model, x0: Tensor, labels: Tensor, eps: Tensor | None,
            lo: Tensor, hi: Tensor, gen: torch.Generator) -> Tensor:
        best_x = x0.clone()
        best = torch.full_like(x0[:, 0], float("inf"))
        with torch.no_grad():
            adv0 = is_adversarial(model(x0), labels)
        best = torch.where(adv0, torch.zeros_like(best), best)
        c = torch.full_like(best, self.initial_const)
        c_lo, c_hi = torch.zeros_like(c), torch.full_like(c, _BIG)
        for _ in range(self.binary_steps):
            ok = self._optimise(model, x0, labels, c, lo, hi, best_x, best)
            c_hi = torch.where(ok, torch.minimum(c_hi, c), c_hi)
            c_lo = torch.where(ok, c_lo, torch.maximum(c_lo, c))
            c = torch.where(c_hi < _BIG, (c_lo + c_hi) / 2, c * 10)
        return best_x

    def _optimise(self, model: Model, x0: Tensor, labels: Tensor, c: Tensor, lo: Tensor,
                  hi: Tensor, best_x: Tensor, best: Tensor) -> Tensor:
        """One (F)ISTA run at constants ``c`` (N,), updating ``best_x``/``best`` in place;
        True where an iterate was adversarial."""
        x, y = x0.clone(), x0.clone()
        ok = torch.zeros_like(c, dtype=torch.bool)
        prev = float("inf")
        for k in range(self.steps):
            y = y.detach().requires_grad_(True)
            margin = torch.clamp(-margin_loss(model(y), labels), min=-self.kappa)
            d = y - x0
            loss = (c * margin + (d * d).sum(dim=1)).sum()  # the smooth part g
            (g,) = torch.autograd.grad(loss, y)
            with torch.no_grad():
                step = self.lr * (1 - k / self.steps) ** 0.5
                x_new = shrink(y - step * g, x0, self.beta, lo, hi)
                y = x_new + (k / (k + 3)) * (x_new - x) if self.fista else x_new
                x = x_new
                logits = model(x)
                adv = is_adversarial(logits, labels)
                if self.kappa > 0:
                    adv &= margin_loss(logits, labels) >= self.kappa
                score = self.score(x, x0)
                take = adv & (score < best)
                best_x[take] = x[take]
                best[take] = score[take]
                ok |= adv
                if self.abort_early and k % max(1, math.ceil(self.steps / 10)) == 0:
                    # the whole elastic-net objective at the new iterate
                    f = torch.clamp(-margin_loss(logits, labels), min=-self.kappa)
                    obj = float((c * f).sum()) + float(self.score_en(x, x0).sum())
                    if obj > 0.9999 * prev:
                        break
                    prev = obj
        return ok
