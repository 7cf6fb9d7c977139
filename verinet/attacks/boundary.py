"""Boundary Attack (Brendel, Rauber & Bethge, ICLR 2018): decision-based, L2, minimal-norm.

A black-box attack that only asks the model whether a point is misclassified: it never
takes a gradient and never reads a score beyond that decision (every model call runs
under ``torch.no_grad``).  The decision is :func:`~verinet.attacks.base.is_adversarial`:
"the top label is not the true label", with the toolkit's float-rounding slack so that a
point found in float32 survives the float64 re-check; for a model that outputs one-hot
labels it is exactly the label decision.

1. **Start** from a misclassified point: up to ``init_tries`` uniform draws in the region
   (the first misclassified one per sample), then ``init_search`` bisection steps on the
   blend ``x0 + t (u - x0)`` towards ``x0`` keep the smallest misclassified blend found.
2. **Walk along the boundary**, per step and sample: an orthogonal step (a Gaussian
   direction orthogonal to ``x0 - x`` of length ``spherical_step * ||x0 - x||``, projected
   back onto the sphere around ``x0``), then a source step towards ``x0`` of
   ``source_step * ||x0 - x||``; both are clipped to the region.  The candidate replaces
   ``x`` when it is misclassified and closer to ``x0``.  So the L2 distance never grows.
3. **Adapt the steps** every ``update_every`` steps from success rates over the last
   100 orthogonal / 30 full proposals (foolbox 3's rule): orthogonal success > 0.5 scales
   both steps by ``step_adaptation``, < 0.2 divides both; full-step success > 0.25 scales
   the source step, < 0.1 divides it.  A sample stops when its source step falls below
   ``converged_below``.

Conventions in verinet: ``eps`` is an optional L-inf cap (the region, where the start is
drawn and every proposal is clipped; None: the whole domain); the reported
``AttackResult.distance`` is ``||x - x0||_2``.  Each sample draws its own Gaussian
directions (foolbox shares one across the batch); all randomness comes from ``gen``, and
a run of ``k`` steps is the first ``k`` steps of a longer run with the same seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from verinet.attacks.base import Attack, Model, is_adversarial
from verinet.types import InputError


def misclassified(model: Model, x: Tensor, labels: Tensor) -> Tensor:
    """The only model query of the attack: (N,) bool, top label != ``labels``."""
    with torch.no_grad():
        return is_adversarial(model(x), labels)


class SuccessQueue:
    """The last ``maxlen`` outcomes per sample; a sample is *full* once it has
    ``maxlen`` outcomes since its last reset."""

    def __init__(self, maxlen: int, like: Tensor) -> None:
        self.data = torch.full((maxlen, like.shape[0]), float("nan"), dtype=like.dtype,
                               device=like.device)
        self.next = 0

    def append(self, outcome: Tensor) -> None:
        self.data[self.next] = outcome.to(self.data.dtype)
        self.next = (self.next + 1) % self.data.shape[0]

    def full(self) -> Tensor:
        return ~torch.isnan(self.data).any(dim=0)

    def rate(self) -> Tensor:
        return torch.nanmean(self.data, dim=0)

    def clear(self, rows: Tensor) -> None:
        self.data[:, rows] = float("nan")


def _norm(v: Tensor) -> Tensor:
    return torch.linalg.vector_norm(v, dim=1, keepdim=True)


@dataclass(frozen=True, kw_only=True)
class Boundary(Attack):
    """Up to ``steps`` proposals per sample with initial ``spherical_step`` and
    ``source_step`` (relative to the current distance); see the module docstring."""

    name: ClassVar[str] = "boundary"
    minimal: ClassVar[bool] = True
    norm: ClassVar[str] = "l2"

    steps: int = 5000
    spherical_step: float = 1e-2
    source_step: float = 1e-2
    step_adaptation: float = 1.5
    converged_below: float = 1e-7
    update_every: int = 10
    init_tries: int = 1000
    init_search: int = 25

    def __post_init__(self) -> None:
        if self.steps < 0 or self.init_search < 0:
            raise InputError(f"{self.name}: steps and init_search must be >= 0")
        if self.init_tries < 1 or self.update_every < 1:
            raise InputError(f"{self.name}: init_tries and update_every must be >= 1")
        for what, v in (("spherical_step", self.spherical_step),
                        ("source_step", self.source_step),
                        ("converged_below", self.converged_below)):
            if not (math.isfinite(v) and v > 0):
                raise InputError(f"{self.name}: {what} must be > 0, got {v}")
        if not (math.isfinite(self.step_adaptation) and self.step_adaptation > 1):
            raise InputError(f"{self.name}: step_adaptation must be > 1")

    def run(self, model: Model, x0: Tensor, labels: Tensor, eps: Tensor | None,
            lo: Tensor, hi: Tensor, gen: torch.Generator) -> Tensor:
        x, found = self.start(model, x0, labels, lo, hi, gen)
        active = found & ~misclassified(model, x0, labels)
        if self.steps == 0 or not bool(active.any()):
            return x
        return self.walk(model, x0, labels, lo, hi, gen, x, active)

    def start(self, model: Model, x0: Tensor, labels: Tensor, lo: Tensor, hi: Tensor,
              gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """Misclassified starting points (x0 where none was found) and the found mask."""
        x = x0.clone()
        found = misclassified(model, x0, labels)
        for _ in range(self.init_tries):
            if bool(found.all()):
                break
            u = lo + torch.rand(x0.shape, generator=gen, dtype=x0.dtype,
                                device=x0.device) * (hi - lo)
            new = ~found & misclassified(model, u, labels)
            x[new] = u[new]
            found |= new
        t_lo = torch.zeros_like(x0[:, :1])
        t_hi = torch.ones_like(t_lo)
        for _ in range(self.init_search):  # the blend at t_hi stays misclassified
            mid = (t_lo + t_hi) / 2
            adv = misclassified(model, x0 + mid * (x - x0), labels)[:, None]
            t_hi = torch.where(adv, mid, t_hi)
            t_lo = torch.where(adv, t_lo, mid)
        x = torch.where(found[:, None], torch.clamp(x0 + t_hi * (x - x0), lo, hi), x0)
        return x, found

    def walk(self, model: Model, x0: Tensor, labels: Tensor, lo: Tensor, hi: Tensor,
             gen: torch.Generator, x: Tensor, active: Tensor) -> Tensor:
        """The boundary walk from misclassified ``x`` for the ``active`` samples."""
        sph = torch.full_like(x0[:, 0], self.spherical_step)
        src = torch.full_like(sph, self.source_step)
        sph_stats, step_stats = SuccessQueue(100, sph), SuccessQueue(30, sph)
        for step in range(1, self.steps + 1):
            active = active & (src >= self.converged_below)
            if not bool(active.any()):
                break
            cand, sph_cand, dist = self.propose(x0, x, sph, src, lo, hi, gen)
            adv = misclassified(model, cand, labels)
            take = active & adv & (torch.linalg.vector_norm(cand - x0, dim=1) < dist)
            x = torch.where(take[:, None], cand, x)
            if step % self.update_every == 0:
                sph_stats.append(misclassified(model, sph_cand, labels))
                step_stats.append(adv)
                sph, src = self.adapt(sph, src, sph_stats, step_stats)
        return x

    def propose(self, x0: Tensor, x: Tensor, sph: Tensor, src: Tensor, lo: Tensor, hi: Tensor,
                gen: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        """(candidate, orthogonal candidate, current distance (N,)) per sample."""
        diff = x0 - x
        dist = _norm(diff)
        direction = diff / dist.clamp_min(torch.finfo(x.dtype).tiny)
        eta = torch.randn(x.shape, generator=gen, dtype=x.dtype, device=x.device)
        eta = eta - (eta * direction).sum(dim=1, keepdim=True) * direction
        eta = eta * (sph[:, None] * dist / _norm(eta).clamp_min(torch.finfo(x.dtype).tiny))
        sph_cand = torch.clamp(x0 + (eta - diff) / torch.sqrt(1 + sph[:, None] ** 2), lo, hi)
        new_diff = x0 - sph_cand
        new_norm = _norm(new_diff)
        length = torch.clamp(src[:, None] * dist + new_norm - dist, min=0)
        length = length / new_norm.clamp_min(torch.finfo(x.dtype).tiny)
        cand = torch.clamp(sph_cand + length * new_diff, lo, hi)
        return cand, sph_cand, dist[:, 0]

    def adapt(self, sph: Tensor, src: Tensor, sph_stats: SuccessQueue,
              step_stats: SuccessQueue) -> tuple[Tensor, Tensor]:
        """Step sizes after the success-rate rules of the module docstring."""
        f = self.step_adaptation
        full = sph_stats.full()
        if bool(full.any()):
            rate = sph_stats.rate()
            up, down = full & (rate > 0.5), full & (rate < 0.2)
            scale = torch.where(up, f, torch.where(down, 1 / f, 1.0)).to(sph.dtype)
            sph, src = sph * scale, src * scale
            sph_stats.clear(up | down)
        full = step_stats.full()
        if bool(full.any()):
            rate = step_stats.rate()
            up, down = full & (rate > 0.25), full & (rate < 0.1)
            src = src * torch.where(up, f, torch.where(down, 1 / f, 1.0)).to(src.dtype)
            step_stats.clear(up | down)
        return sph, src
