"""Bound rule of 2-D max pooling: a sound linear relaxation of ``max`` over each window.

For a window with input bounds ``l_i <= x_i <= u_i`` (padding excluded: ``-inf``), let
``k`` be the element with the largest lower bound, ``u* = max_i u_i`` and
``g = max(0, max_{i != k} u_i - l_k)``.

* **Lower line**: ``y >= sum_i w_i x_i`` for any convex weights ``w`` (the maximum is at
  least every convex combination); parameters choose ``w`` (normalised, zero on padding;
  CROWN: ``w = e_k``).
* **Upper line**: ``y <= t (x_k + g) + (1 - t) u*``, ``t`` in [0, 1].  Both ends are valid:
  ``y <= u*`` trivially, and ``y <= x_k + g`` because at any point either the maximum is
  ``x_k`` or it is some ``x_i <= u_i <= l_k + g <= x_k + g``; a convex combination of
  valid upper bounds is valid.  ``t = 1`` is exact when ``k`` dominates (``g = 0``).
  CROWN's choice: ``t = 1`` when ``mid_k + g < u*`` (the plane is lower on average).

Ties, single-element windows and degenerate intervals need no special case: every
statement above holds with equalities.  The output interval is ``[max l, max u]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from verinet.bounds.fp import Slack
from verinet.bounds.graph.affine import Rule
from verinet.bounds.graph.model import NodeInfo, RuleError
from verinet.bounds.graph.windows import Window


@dataclass(frozen=True)
class PoolRelaxation:
    """Per output unit: lower weights ``w`` (..., C, kk, Ho, Wo); upper ``t`` times the
    element ``k`` (one-hot ``e_k``, same shape as ``w``) plus ``const``; ``X`` bounds the
    magnitude of every term (float slack)."""

    w: Tensor
    e_k: Tensor
    t: Tensor
    const: Tensor
    X: Tensor


@dataclass(frozen=True)
class MaxPoolRule(Rule):
    window: Window
    fan_in: int = 1
    linear = False

    @property
    def n_params(self) -> int:
        return self.window.kk + 1

    def f(self, x: Tensor) -> Tensor:
        return self.window.unfold(x, float("-inf")).amax(dim=2)

    def interval(self, lo: Tensor, hi: Tensor, slack: Slack) -> tuple[Tensor, Tensor]:
        return self.f(lo), self.f(hi)

    def needs(self, lo: Tensor, hi: Tensor) -> Tensor:
        return torch.ones_like(lo, dtype=torch.bool)

    def _cols(self, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
        lead = lo.shape[:-3]
        flat = (-1,) + tuple(lo.shape[-3:])
        cl = self.window.unfold(lo.reshape(flat), float("-inf"))
        ch = self.window.unfold(hi.reshape(flat), float("-inf"))
        return cl.reshape(lead + cl.shape[1:]), ch.reshape(lead + ch.shape[1:])

    def init(self, lo: Tensor, hi: Tensor) -> Tensor:
        cl, ch = self._cols(lo, hi)
        k = cl.argmax(dim=-3, keepdim=True)
        w = torch.zeros_like(cl).scatter_(-3, k, 1.0)
        _, _, g, u_star, mid_k = _geometry(cl, ch, k)
        t = (mid_k + g < u_star).to(lo.dtype)
        return torch.cat([w, t], dim=-3).movedim(-3, 0)

    def relax_pool(self, lo: Tensor, hi: Tensor, p: Tensor | None) -> PoolRelaxation:
        cl, ch = self._cols(lo, hi)
        k = cl.argmax(dim=-3, keepdim=True)
        e_k = torch.zeros_like(cl).scatter_(-3, k, 1.0)
        _, real, g, u_star, mid_k = _geometry(cl, ch, k)
        q = self.init(lo, hi) if p is None else p
        q = q.movedim(0, -3)
        w = q[..., :-1, :, :] * real
        total = w.sum(dim=-3, keepdim=True)
        w = torch.where(total > 0, w / torch.where(total > 0, total, 1.0), e_k)
        t = q[..., -1:, :, :]
        const = t * g + (1.0 - t) * u_star
        vmax = torch.where(real, torch.maximum(cl.abs(), ch.abs()), 0.0).amax(dim=-3, keepdim=True)
        X = 2.0 * (g.abs() + u_star.abs() + vmax)
        return PoolRelaxation(w, e_k, t, const.squeeze(-3), X.squeeze(-3))

    def backward(self, A: Tensor, r: PoolRelaxation) -> tuple[Tensor, Tensor, Tensor]:
        """``A`` (B, K, C, Ho, Wo) -> input coefficients (B, K, C, H, W), constant and
        magnitude (B, K)."""
        pos, neg = A.clamp(min=0.0), A.clamp(max=0.0)
        cols = pos.unsqueeze(-3) * r.w + (neg.unsqueeze(-3) * r.t) * r.e_k
        B, K = A.shape[:2]
        back = self.window.fold(cols.reshape((B * K,) + cols.shape[2:]))
        const = (neg * r.const).flatten(2).sum(-1)
        mag = (A.abs() * r.X).flatten(2).sum(-1)
        return back.reshape((B, K) + back.shape[1:]), const, mag


def _geometry(cl: Tensor, ch: Tensor,
              k: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """(l_k, real mask, gap g, u*, mid_k) of each window (keepdim on the window axis)."""
    real = torch.isfinite(cl)
    l_k = cl.gather(-3, k)
    u_k = ch.gather(-3, k)
    others = ch.scatter(-3, k, float("-inf")).amax(dim=-3, keepdim=True)
    g = (others - l_k).clamp(min=0.0).nan_to_num(nan=0.0, neginf=0.0)
    u_star = ch.amax(dim=-3, keepdim=True)
    return l_k, real, g, u_star, (l_k + u_k) / 2.0


def build_maxpool(info: NodeInfo) -> Rule:
    window = Window.of(info.op, info.in_shapes[0][1:])  # type: ignore[arg-type]
    if window.out_hw != tuple(info.shape[2:]):
        raise RuleError(f"pooled size {window.out_hw} differs from the graph's {info.shape[2:]}")
    return MaxPoolRule(window, fan_in=window.kk + 1)
