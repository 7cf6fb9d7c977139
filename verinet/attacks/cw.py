"""Carlini & Wagner attacks (S&P 2017), L2 and L-inf, minimal-norm.

Both optimise in tanh space: ``x = lo + (hi - lo) * (tanh(w) + 1) / 2`` keeps every
iterate inside the region box, and Adam runs on ``w``.  The margin term is
``max(f_l - max_{j != l} f_j, -kappa)``.

* :class:`CWL2` minimises ``||x - x0||_2^2 + c * margin`` with a per-sample binary
  search on ``c``.  The toolkit reports L-inf radii, so among the adversarial iterates
  the one with the smallest L-inf distance is kept (a witness, not an L-inf optimum).
* :class:`CWLinf` minimises ``c * max(margin, 0) + sum_i max(|d_i| - tau, 0)``; after
  a run that found an adversarial point ``tau <- decrease * min(tau, ||d||_inf)`` and the
  next run warm-starts there; after a failure ``c <- 2 c``.  A sample stops when
  ``tau < tau_min`` or ``c > largest_const``.  ``tau`` is absolute (input units).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from verinet.attacks.base import Attack, BestAdversarial, Model, margin_loss
from verinet.optim import Adam
from verinet.types import InputError

_BIG = 1e10


def tanh_box(lo: Tensor, hi: Tensor) -> tuple[Callable[[Tensor], Tensor],
                                                Callable[[Tensor], Tensor]]:
    """(to_w, from_w) between the box ``[lo, hi]`` (N, n) and unconstrained ``w``."""
    width = hi - lo
    flat = width <= 0
    safe = torch.where(flat, torch.ones_like(width), width)
    lim = 1 - 4 * torch.finfo(lo.dtype).eps ** 0.5

    def to_w(x: Tensor) -> Tensor:
        u = torch.where(flat, torch.zeros_like(x), 2 * (x - lo) / safe - 1)
        return torch.atanh(u.clamp(-lim, lim))

    def from_w(w: Tensor) -> Tensor:
        return torch.minimum(torch.maximum(lo + width * (torch.tanh(w) + 1) / 2, lo), hi)

    return to_w, from_w


def _check(cond: bool, name: str, what: str) -> None:
    if not cond:
        raise InputError(f"{name}: {what}")


@dataclass(frozen=True, kw_only=True)
class CWL2(Attack):
    """``binary_steps`` searches on ``c`` from ``initial_const``, ``steps`` Adam steps
    (learning rate ``lr``) each; ``abort_early`` stops a run whose loss stalls."""

    name: ClassVar[str] = "cw-l2"
    minimal: ClassVar[bool] = True

    steps: int = 1000
    binary_steps: int = 9
    initial_const: float = 1e-3
    lr: float = 0.01
    kappa: float = 0.0
    abort_early: bool = True

    def __post_init__(self) -> None:
        _check(self.steps >= 1 and self.binary_steps >= 1, self.name, "steps must be >= 1")
        _check(self.initial_const > 0 and self.lr > 0, self.name, "const and lr must be > 0")
        _check(self.kappa >= 0, self.name, "kappa must be >= 0")

    def run(self, model: Model, x0: Tensor, labels: Tensor, eps: Tensor | None,
            lo: Tensor, hi: Tensor, gen: torch.Generator) -> Tensor:
        best = BestAdversarial(x0)
        with torch.no_grad():
            best.update(x0, model(x0), labels)
        to_w, from_w = tanh_box(lo, hi)
        w0 = to_w(x0)
        c = torch.full_like(x0[:, 0], self.initial_const)
        c_lo, c_hi = torch.zeros_like(c), torch.full_like(c, _BIG)
        for _ in range(self.binary_steps):
            ok = self._optimise(model, x0, labels, c, w0, from_w, best)
            c_hi = torch.where(ok, torch.minimum(c_hi, c), c_hi)
            c_lo = torch.where(ok, c_lo, torch.maximum(c_lo, c))
            c = torch.where(c_hi < _BIG, (c_lo + c_hi) / 2, c * 10)
        return best.x

    def _optimise(self, model: Model, x0: Tensor, labels: Tensor, c: Tensor, w0: Tensor,
                  from_w: Callable[[Tensor], Tensor], best: BestAdversarial) -> Tensor:
        """One Adam run at constants ``c`` (N,); True where an iterate was adversarial."""
        w = w0.clone().requires_grad_(True)
        opt = Adam([w], lr=self.lr)
        ok = torch.zeros_like(c, dtype=torch.bool)
        prev = float("inf")
        for i in range(self.steps + 1):
            x = from_w(w)
            logits = model(x)
            ok |= best.update(x, logits, labels)
            if i == self.steps:
                break
            margin = torch.clamp(-margin_loss(logits, labels), min=-self.kappa)
            loss = (((x - x0) ** 2).sum(dim=1) + c * margin).sum()
            if self.abort_early and i % max(1, self.steps // 10) == 0:
                if loss.item() > 0.9999 * prev:
                    break
                prev = loss.item()
            opt.descend(loss)
        return ok


@dataclass(frozen=True, kw_only=True)
class CWLinf(Attack):
    """Runs of up to ``steps`` Adam steps (learning rate ``lr``) per (tau, c) pair, from
    ``tau_init`` and ``initial_const``; see the module docstring for the schedule."""

    name: ClassVar[str] = "cw-linf"
    minimal: ClassVar[bool] = True

    steps: int = 200
    lr: float = 5e-3
    initial_const: float = 1e-5
    largest_const: float = 20.0
    const_factor: float = 2.0
    tau_init: float = 1.0
    tau_min: float = 1 / 255
    decrease: float = 0.9
    kappa: float = 0.0

    def __post_init__(self) -> None:
        _check(self.steps >= 1, self.name, "steps must be >= 1")
        _check(0 < self.initial_const <= self.largest_const, self.name,
               "need 0 < initial_const <= largest_const")
        _check(self.const_factor > 1 and 0 < self.decrease < 1, self.name,
               "need const_factor > 1 and 0 < decrease < 1")
        _check(0 < self.tau_min <= self.tau_init and self.lr > 0 and self.kappa >= 0,
               self.name, "need 0 < tau_min <= tau_init, lr > 0, kappa >= 0")

    def run(self, model: Model, x0: Tensor, labels: Tensor, eps: Tensor | None,
            lo: Tensor, hi: Tensor, gen: torch.Generator) -> Tensor:
        best = BestAdversarial(x0)
        with torch.no_grad():
            best.update(x0, model(x0), labels)
        start = x0.clone()
        tau = torch.full_like(x0[:, 0], self.tau_init)
        c = torch.full_like(tau, self.initial_const)
        active = ~best.found
        while bool(active.any()):
            idx = active.nonzero().squeeze(1)
            sub = BestAdversarial(x0[idx])
            self._optimise(model, x0[idx], labels[idx], start[idx], tau[idx], c[idx],
                           lo[idx], hi[idx], sub)
            ok = sub.found
            tau[idx] = torch.where(ok, self.decrease * torch.minimum(tau[idx], sub.dist),
                                   tau[idx])
            c[idx] = torch.where(ok, c[idx], c[idx] * self.const_factor)
            start[idx] = torch.where(ok[:, None], sub.x, start[idx])
            better = ok & (sub.dist < best.dist[idx])
            best.x[idx] = torch.where(better[:, None], sub.x, best.x[idx])
            best.dist[idx] = torch.where(better, sub.dist, best.dist[idx])
            active = active & (tau >= self.tau_min) & (c <= self.largest_const)
        return best.x

    def _optimise(self, model: Model, x0: Tensor, labels: Tensor, start: Tensor, tau: Tensor,
                  c: Tensor, lo: Tensor, hi: Tensor, best: BestAdversarial) -> None:
        """One run at (tau, c) per sample from ``start``; adversarial iterates go to
        ``best``.  Stops once every sample has found one."""
        to_w, from_w = tanh_box(lo, hi)
        w = to_w(start).requires_grad_(True)
        opt = Adam([w], lr=self.lr)
        for i in range(self.steps + 1):
            x = from_w(w)
            logits = model(x)
            best.update(x, logits, labels)
            if i == self.steps or bool(best.found.all()):
                break
            margin = torch.clamp(-margin_loss(logits, labels) + self.kappa, min=0)
            excess = torch.relu((x - x0).abs() - tau[:, None]).sum(dim=1)
            loss = (c * margin + excess).sum()
            opt.descend(loss)
