"""Bound rules of the elementwise activations: ReLU, LeakyReLU, Clip, Sigmoid, Tanh.

Each rule states, for a pre-activation interval ``[l, u]`` (any shape), a sound output
interval and a linear relaxation ``a_lo z + c_lo <= f(z) <= a_up z + c_up`` valid on all
of ``[l, u]`` (slopes never negative).  Relaxations are *parameterised*: ``params`` (P,
...) in ``[0, 1]`` pick one member of a family of valid lines, so every value the
optimiser (alpha-CROWN) reaches is sound.  ``init`` gives CROWN's choice.

* ReLU: triangle upper line; lower line ``alpha z``, ``alpha`` in [0, 1].
* LeakyReLU(a), a >= 0: chord on the concave/convex side; the line through the origin
  with slope between ``a`` and 1 on the other.
* Clip(lo, hi): exact off its kinks; one kink crossed: a shifted ReLU; both crossed: a
  convex combination of two valid lines per side.
* Sigmoid, Tanh (convex below 0, concave above): chord on the convex side, a tangent on
  the concave side at a point chosen by the parameter; on intervals containing 0 the chord
  when valid, else a tangent at a point in ``[d*, u]``, where ``d*`` (bisection) is the
  first tangent point that passes above ``(l, f(l))`` (every later one does too).  The
  lower line is the upper line of the point-reflected function ``2 f(0) - f(-z)``.
  The output interval is ``[f(l), f(u)]`` as evaluated: its few ulps of evaluation error
  are inside the slack of whatever reads it (every consumer's magnitude term carries
  ``|coefficient| max|f|``).
  Intercepts move outward by ``slack(a max|z| + |c| + 1)`` of the engine's slack rule,
  which covers the evaluation error of ``exp``/``tanh``; below ``FLAT_WIDTH`` the
  constant lines ``f(l) <= f(z) <= f(u)`` are used.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from verinet.bounds.fp import Slack
from verinet.bounds.graph.affine import Rule
from verinet.bounds.graph.model import NodeInfo, RuleError

BISECT_STEPS = 50
FLAT_WIDTH = 1e-12


@dataclass(frozen=True)
class Relaxation:
    """``a_lo z + c_lo <= f(z) <= a_up z + c_up`` on the pre-activation interval."""

    a_lo: Tensor
    c_lo: Tensor
    a_up: Tensor
    c_up: Tensor


class Elementwise(Rule):
    """Base of the activation rules: ``n_params`` parameters per unit."""

    linear = False
    n_params = 0

    def interval(self, lo: Tensor, hi: Tensor, slack: Slack) -> tuple[Tensor, Tensor]:
        return self.f(lo), self.f(hi)

    def f(self, z: Tensor) -> Tensor:
        raise NotImplementedError

    def needs(self, lo: Tensor, hi: Tensor) -> Tensor:
        """Units whose relaxation would gain from tighter input bounds."""
        return (lo < 0) & (hi > 0)

    def init(self, lo: Tensor, hi: Tensor) -> Tensor | None:
        return None

    def relax(self, lo: Tensor, hi: Tensor, p: Tensor | None, slack: Slack) -> Relaxation:
        raise NotImplementedError


def _safe_div(num: Tensor, den: Tensor, ok: Tensor) -> Tensor:
    return num / torch.where(ok, den, torch.ones_like(den))


@dataclass(frozen=True)
class ReluRule(Elementwise):
    n_params = 1

    def f(self, z: Tensor) -> Tensor:
        return z.clamp(min=0.0)

    def init(self, lo: Tensor, hi: Tensor) -> Tensor:
        return (hi > -lo).to(lo.dtype).unsqueeze(0)

    def relax(self, lo: Tensor, hi: Tensor, p: Tensor | None, slack: Slack) -> Relaxation:
        unstable = (lo < 0) & (hi > 0)
        active = (lo >= 0).to(lo.dtype)
        s = torch.where(unstable, _safe_div(hi, hi - lo, unstable), active)
        c_up = torch.where(unstable, -s * lo, torch.zeros_like(lo))
        alpha = (hi > -lo).to(lo.dtype) if p is None else p[0]
        a_lo = torch.where(unstable, alpha, active)
        return Relaxation(a_lo, torch.zeros_like(a_lo), s.expand_as(a_lo), c_up.expand_as(a_lo))


@dataclass(frozen=True)
class LeakyReluRule(Elementwise):
    alpha: float
    n_params = 1

    def f(self, z: Tensor) -> Tensor:
        return torch.where(z >= 0, z, self.alpha * z)

    def init(self, lo: Tensor, hi: Tensor) -> Tensor:
        up = (hi > -lo).to(lo.dtype)
        return (up if self.alpha <= 1 else 1.0 - up).unsqueeze(0)

    def relax(self, lo: Tensor, hi: Tensor, p: Tensor | None, slack: Slack) -> Relaxation:
        a = self.alpha
        unstable = (lo < 0) & (hi > 0)
        inactive_slope = torch.where(lo >= 0, torch.ones_like(lo), torch.full_like(lo, a))
        chord = _safe_div(hi - a * lo, hi - lo, unstable)
        chord_c = a * lo - chord * lo
        q = self.init(lo, hi)[0] if p is None else p[0]
        tangent = (a + q * (1.0 - a)) if a <= 1 else (1.0 + q * (a - 1.0))
        if a <= 1:  # convex: chord above, a line through 0 below
            a_lo, c_lo, a_up, c_up = tangent, torch.zeros_like(chord), chord, chord_c
        else:  # concave: the line through 0 above, the chord below
            a_lo, c_lo, a_up, c_up = chord, chord_c, tangent, torch.zeros_like(chord)
        zero = torch.zeros_like(lo)
        shape = torch.broadcast_shapes(lo.shape, torch.as_tensor(q).shape)
        return Relaxation(*(torch.where(unstable, v, d).expand(shape) for v, d in (
            (a_lo, inactive_slope), (c_lo, zero), (a_up, inactive_slope), (c_up, zero))))


def build_leaky(info: NodeInfo) -> Rule:
    a = float(info.op.alpha)  # type: ignore[attr-defined]
    if a < 0:
        raise RuleError(f"negative slope {a} (not monotone)")
    return LeakyReluRule(a)


@dataclass(frozen=True)
class ClipRule(Elementwise):
    """``min(max(z, lo), hi)``; ``None`` ends are open."""

    lo_c: float | None
    hi_c: float | None
    n_params = 2

    def f(self, z: Tensor) -> Tensor:
        if self.lo_c is not None and self.hi_c is not None and self.lo_c > self.hi_c:
            return torch.full_like(z, self.hi_c)
        return z.clamp(self.lo_c, self.hi_c) if (self.lo_c, self.hi_c) != (None, None) else z

    def _ends(self, z: Tensor) -> tuple[Tensor, Tensor]:
        big = torch.finfo(z.dtype).max
        a = torch.full_like(z, -big if self.lo_c is None else self.lo_c)
        b = torch.full_like(z, big if self.hi_c is None else self.hi_c)
        return a, b

    def needs(self, lo: Tensor, hi: Tensor) -> Tensor:
        a, b = self._ends(lo)
        return ((lo < a) & (hi > a)) | ((lo < b) & (hi > b))

    def init(self, lo: Tensor, hi: Tensor) -> Tensor:
        return torch.stack([(hi > -lo).to(lo.dtype)] * 2)

    def relax(self, lo: Tensor, hi: Tensor, p: Tensor | None, slack: Slack) -> Relaxation:
        if self.lo_c is not None and self.hi_c is not None and self.lo_c > self.hi_c:
            z = torch.zeros_like(lo)
            c = torch.full_like(lo, self.hi_c)
            return Relaxation(z, c, z, c)
        q = self.init(lo, hi) if p is None else p
        a, b = self._ends(lo)
        f_lo, f_hi = self.f(lo), self.f(hi)
        zero, one = torch.zeros_like(lo), torch.ones_like(lo)
        flat = (hi <= a) | (lo >= b)
        ident = (lo >= a) & (hi <= b)
        low_k = (lo < a) & (hi > a)    # the lower kink is crossed
        high_k = (lo < b) & (hi > b)   # the upper kink is crossed
        # upper line: through (l, f(l)) and (min(u, b), f(min(u, b))), mixed with hi=const
        top = torch.minimum(hi, b)
        s_up = _safe_div(top - f_lo, top - lo, top > lo)
        c_up = f_lo - s_up * lo
        mix_up = torch.where(high_k & low_k, q[0], one)
        a_up = torch.where(high_k & ~low_k, q[0], s_up * mix_up)
        c_up = torch.where(high_k & ~low_k, b - q[0] * b, c_up * mix_up + (1 - mix_up) * b)
        # lower line: through (max(l, a), f(max(l, a))) and (u, f(u)), mixed with lo=const
        bot = torch.maximum(lo, a)
        s_lo = _safe_div(f_hi - bot, hi - bot, hi > bot)
        c_lo = f_hi - s_lo * hi
        mix_lo = torch.where(high_k & low_k, q[1], one)
        a_lo = torch.where(low_k & ~high_k, q[1], s_lo * mix_lo)
        c_lo = torch.where(low_k & ~high_k, a - q[1] * a, c_lo * mix_lo + (1 - mix_lo) * a)
        out = []
        for v, exact in ((a_lo, one), (c_lo, zero), (a_up, one), (c_up, zero)):
            v = torch.where(ident, exact, v)
            const = zero if exact is one else f_lo
            out.append(torch.where(flat, const, v))
        return Relaxation(*out)


def build_clip(info: NodeInfo) -> Rule:
    return ClipRule(info.op.lo, info.op.hi)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class SmoothRule(Elementwise):
    """Sigmoid (``kind="sigmoid"``) or tanh."""

    kind: str
    n_params = 2

    def f(self, z: Tensor) -> Tensor:
        return torch.sigmoid(z) if self.kind == "sigmoid" else torch.tanh(z)

    def df(self, z: Tensor) -> Tensor:
        if self.kind == "sigmoid":
            s = torch.sigmoid(z)
            return s * (1.0 - s)
        t = torch.tanh(z)
        return 1.0 - t * t

    def needs(self, lo: Tensor, hi: Tensor) -> Tensor:
        return (hi - lo) >= FLAT_WIDTH

    def init(self, lo: Tensor, hi: Tensor) -> Tensor:
        """CROWN's lines: the midpoint tangent on a one-curvature side, ``d*`` on mixed
        intervals (parameter 0 for the upper, 1 for the lower line)."""
        half, zero = torch.full_like(lo, 0.5), torch.zeros_like(lo)
        return torch.stack([torch.where(lo >= 0, half, zero), torch.where(hi <= 0, half, zero)])

    def relax(self, lo: Tensor, hi: Tensor, p: Tensor | None, slack: Slack) -> Relaxation:
        q = self.init(lo, hi) if p is None else p
        a_up, c_up = self._upper(lo, hi, q[0])
        a_lo, c_ref = self._upper(-hi, -lo, q[1])
        centre = 0.5 if self.kind == "sigmoid" else 0.0
        c_lo = 2.0 * centre - c_ref
        flat = (hi - lo) < FLAT_WIDTH
        zero = torch.zeros_like(a_up)
        a_up, a_lo = torch.where(flat, zero, a_up), torch.where(flat, zero, a_lo)
        c_up = torch.where(flat, self.f(hi), c_up)
        c_lo = torch.where(flat, self.f(lo), c_lo)
        zmax = torch.maximum(lo.abs(), hi.abs())
        c_up = c_up + slack(a_up * zmax + c_up.abs() + 1.0)
        c_lo = c_lo - slack(a_lo * zmax + c_lo.abs() + 1.0)
        return Relaxation(a_lo, c_lo, a_up, c_up)

    def _tangent(self, d: Tensor) -> tuple[Tensor, Tensor]:
        a = self.df(d)
        return a, self.f(d) - a * d

    def _upper(self, lo: Tensor, hi: Tensor, p: Tensor) -> tuple[Tensor, Tensor]:
        """An upper line on ``[l, u]``: chord (convex side), tangent at ``l + p (u - l)``
        (concave side), chord or tangent at ``d* + p (u - d*)`` (mixed)."""
        fl, fu = self.f(lo), self.f(hi)
        k = _safe_div(fu - fl, hi - lo, hi > lo)
        chord_c = fl - k * lo
        a_cc, c_cc = self._tangent(lo + p * (hi - lo))
        convex = hi <= 0
        mixed = (lo < 0) & (hi > 0)
        a = torch.where(convex, k, a_cc)
        c = torch.where(convex, chord_c, c_cc)
        if bool(mixed.any()):
            chord_ok = fu + self.df(hi) * (lo - hi) <= fl
            d0 = self._first_tangent(torch.where(mixed, lo, -torch.ones_like(lo)),
                                     torch.where(mixed, hi, torch.ones_like(hi)))
            ta, tc = self._tangent(d0 + p * (torch.where(mixed, hi, d0) - d0))
            a = torch.where(mixed, torch.where(chord_ok, k, ta), a)
            c = torch.where(mixed, torch.where(chord_ok, chord_c, tc), c)
        return a, c

    def _first_tangent(self, lo: Tensor, hi: Tensor) -> Tensor:
        """A point ``d`` in ``[0, u]`` whose tangent passes above ``(l, f(l))``
        (``t_d(l) - f(l)`` increases with ``d`` on ``[0, u]``); checked, not assumed."""
        fl = self.f(lo)
        with torch.no_grad():
            a, b = torch.zeros_like(hi), hi.clone()
            for _ in range(BISECT_STEPS):
                mid = (a + b) / 2.0
                ta, tc = self._tangent(mid)
                ok = ta * lo + tc >= fl
                b = torch.where(ok, mid, b)
                a = torch.where(ok, a, mid)
        return b.detach()


def build_sigmoid(info: NodeInfo) -> Rule:
    return SmoothRule("sigmoid")


def build_tanh(info: NodeInfo) -> Rule:
    return SmoothRule("tanh")


def build_relu(info: NodeInfo) -> Rule:
    return ReluRule()
