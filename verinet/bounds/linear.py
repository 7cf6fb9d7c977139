"""Linear building blocks of the CROWN bounds: the chain as tensors, sound linear
relaxations of the activations, concretisation over boxes and forward linear bounds.

Every relaxation is ``a_lo z + c_lo <= act(z) <= a_up z + c_up`` on the pre-activation
interval ``[l, u]`` with slopes ``>= 0``.

* ReLU: stable neurons are exact; unstable ones use the triangle upper line
  ``u / (u - l) (z - l)`` and the lower line ``alpha z`` (CROWN's adaptive
  ``alpha = 1 if u > -l else 0``, or an optimised one, see :mod:`verinet.bounds.alpha`).
* Sigmoid / tanh (convex for ``z < 0``, concave for ``z > 0``): chord and tangent at the
  midpoint on one-curvature intervals; on mixed intervals the chord when it is valid and
  otherwise the tangent through the far endpoint, found by bisection and accepted only at
  a point where the validity condition holds.  The lower line is the upper line of the
  point-reflected function.  Intercepts are shifted outward by
  ``fp_slack(a max|z| + |c| + 1)``, which covers the evaluation error of ``exp``/``tanh``.
  Below a width of ``FLAT_WIDTH`` the constant bounds ``act(l) <= act(z) <= act(u)`` are used.

Float tolerance: see :mod:`verinet.bounds.crown`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from verinet.bounds.fp import FLOAT64
from verinet.ir.chain import Chain

DT = torch.float64
BISECT_STEPS = 50
FLAT_WIDTH = 1e-12


def slack(mag: Tensor) -> Tensor:
    """The float64 slack rule (:mod:`verinet.bounds.fp`) on tensors."""
    return FLOAT64(mag)


@dataclass(frozen=True)
class TorchChain:
    """The chain's weights as float64 tensors."""

    W: tuple[Tensor, ...]
    absW: tuple[Tensor, ...]
    b: tuple[Tensor, ...]
    kinds: tuple[str, ...]

    @staticmethod
    def of(chain: Chain) -> TorchChain:
        W = tuple(torch.tensor(a.weight, dtype=DT) for a in chain.affines)
        b = tuple(torch.tensor(a.bias, dtype=DT) for a in chain.affines)
        kinds = tuple(a.kind for a in chain.activations)
        return TorchChain(W, tuple(w.abs() for w in W), b, kinds)


def act_apply(kind: str, z: Tensor) -> Tensor:
    if kind == "relu":
        return z.clamp(min=0.0)
    return torch.sigmoid(z) if kind == "sigmoid" else torch.tanh(z)


def act_deriv(kind: str, z: Tensor) -> Tensor:
    if kind == "sigmoid":
        s = torch.sigmoid(z)
        return s * (1.0 - s)
    t = torch.tanh(z)
    return 1.0 - t * t


def affine_ibp(net: TorchChain, j: int, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Interval bounds of affine layer ``j`` for inputs in ``[lo, hi]`` (B, n), and the
    term magnitude ``|W| max(|lo|, |hi|) + |b|`` used for float slack."""
    mid, rad = (lo + hi) / 2.0, (hi - lo) / 2.0
    c = mid @ net.W[j].T + net.b[j]
    r = rad @ net.absW[j].T
    mag = torch.maximum(lo.abs(), hi.abs()) @ net.absW[j].T + net.b[j].abs()
    s = slack(mag)
    return c - r - s, c + r + s, mag


@dataclass(frozen=True)
class Relaxation:
    """``a_lo z + c_lo <= act(z) <= a_up z + c_up`` on the layer's interval, each (B, n);
    the slopes are never negative."""

    a_lo: Tensor
    c_lo: Tensor
    a_up: Tensor
    c_up: Tensor


def relu_relaxation(lb: Tensor, ub: Tensor, alpha: Tensor | None = None) -> Relaxation:
    """CROWN relaxation of ReLU; ``alpha`` (B, n) replaces the adaptive lower slope of
    unstable neurons when given."""
    active = (lb >= 0).to(DT)
    unstable = (lb < 0) & (ub > 0)
    s = torch.where(unstable, ub / torch.where(unstable, ub - lb, 1.0), active)
    c_up = torch.where(unstable, -s * lb, 0.0)
    if alpha is None:
        alpha = (ub > -lb).to(DT)
    a_lo = torch.where(unstable, alpha, active)
    return Relaxation(a_lo, torch.zeros_like(lb), s, c_up)


def smooth_relaxation(kind: str, lb: Tensor, ub: Tensor) -> Relaxation:
    """Sound lines for sigmoid / tanh on ``[l, u]`` (see the module docstring)."""
    a_up, c_up = _upper_line(kind, lb, ub)
    a_lo, c_ref = _upper_line(kind, -ub, -lb)
    centre = 0.5 if kind == "sigmoid" else 0.0
    c_lo = 2.0 * centre - c_ref  # f(z) = 2 f(0) - f(-z)
    flat = (ub - lb) < FLAT_WIDTH
    a_up = torch.where(flat, 0.0, a_up)
    a_lo = torch.where(flat, 0.0, a_lo)
    c_up = torch.where(flat, act_apply(kind, ub), c_up)
    c_lo = torch.where(flat, act_apply(kind, lb), c_lo)
    zmax = torch.maximum(lb.abs(), ub.abs())
    c_up = c_up + slack(a_up * zmax + c_up.abs() + 1.0)
    c_lo = c_lo - slack(a_lo * zmax + c_lo.abs() + 1.0)
    return Relaxation(a_lo, c_lo, a_up, c_up)


def _tangent(kind: str, d: Tensor) -> tuple[Tensor, Tensor]:
    a = act_deriv(kind, d)
    return a, act_apply(kind, d) - a * d


def _upper_line(kind: str, lb: Tensor, ub: Tensor) -> tuple[Tensor, Tensor]:
    """An upper line of a sigmoid-shaped function on ``[l, u]`` (exact arithmetic)."""
    fl, fu = act_apply(kind, lb), act_apply(kind, ub)
    width = torch.where(ub > lb, ub - lb, 1.0)
    k = (fu - fl) / width
    chord_c = fl - k * lb
    a, c = _tangent(kind, (lb + ub) / 2.0)  # concave region (lb >= 0)
    convex = ub <= 0
    a, c = torch.where(convex, k, a), torch.where(convex, chord_c, c)
    mixed = (lb < 0) & (ub > 0)
    if bool(mixed.any()):
        lm, um = lb[mixed], ub[mixed]
        du = act_deriv(kind, um)
        chord_ok = fu[mixed] + du * (lm - um) <= fl[mixed]  # tangent at the upper end passes below
        d = _bisect_tangent(kind, lm, um)
        ta, tc = _tangent(kind, d)
        a[mixed] = torch.where(chord_ok, k[mixed], ta)
        c[mixed] = torch.where(chord_ok, chord_c[mixed], tc)
    return a, c


def _bisect_tangent(kind: str, lb: Tensor, ub: Tensor) -> Tensor:
    """A point ``d`` in ``[0, u]`` whose tangent passes above ``(l, f(l))``; such a tangent
    is above ``f`` on ``[l, inf)``.  ``g(d) = t_d(l) - f(l)`` is increasing on ``[0, u]``."""
    fl = act_apply(kind, lb)
    lo, hi = torch.zeros_like(ub), ub.clone()
    for _ in range(BISECT_STEPS):
        mid = (lo + hi) / 2.0
        a, c = _tangent(kind, mid)
        ok = a * lb + c >= fl
        hi = torch.where(ok, mid, hi)
        lo = torch.where(ok, lo, mid)
    return hi


def relaxation(kind: str, lb: Tensor, ub: Tensor, alpha: Tensor | None = None) -> Relaxation:
    if kind == "relu":
        return relu_relaxation(lb, ub, alpha)
    return smooth_relaxation(kind, lb, ub)


def relax_take(r: Relaxation, idx: Tensor) -> Relaxation:
    """The relaxation restricted to boxes ``idx``."""
    return Relaxation(r.a_lo[idx], r.c_lo[idx], r.a_up[idx], r.c_up[idx])


def concretize(coef: Tensor, const: Tensor, mag: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
    """Sound minimum of ``coef x + const`` over the boxes, widened by the float slack."""
    mid, rad = (lo + hi) / 2.0, (hi - lo) / 2.0
    val = (coef @ mid.unsqueeze(-1)).squeeze(-1) - (coef.abs() @ rad.unsqueeze(-1)).squeeze(-1)
    return val + const - slack(mag)


@dataclass(frozen=True)
class Forward:
    """Forward linear bounds ``F_lo (x, 1) <= z_j(x) <= F_up (x, 1)``.

    ``F_lo``/``F_up`` are (n_j, B, n + 1) (last column: the constant) so that a layer is one
    matrix product.  ``mag`` (B, n_j) bounds the magnitude of every term behind both
    functions; the rounding error of the whole forward pass is below
    ``depth * gamma_width * mag``, which ``fp_slack(mag)`` dominates for
    ``depth * width <= 10^5``.
    """

    F_lo: Tensor
    F_up: Tensor
    mag: Tensor

    @staticmethod
    def start(net: TorchChain, vmag0: Tensor) -> Forward:
        B = vmag0.shape[0]
        F = torch.cat([net.W[0], net.b[0].unsqueeze(1)], dim=1).unsqueeze(1)
        F = F.expand(F.shape[0], B, F.shape[2])
        return Forward(F, F, vmag0)

    def step(self, net: TorchChain, j: int, r: Relaxation) -> Forward:
        """Through relaxation ``r`` of activation ``j - 1`` and affine layer ``j``."""
        H_lo = r.a_lo.T.unsqueeze(-1) * self.F_lo
        H_up = r.a_up.T.unsqueeze(-1) * self.F_up
        H_lo[..., -1] += r.c_lo.T
        H_up[..., -1] += r.c_up.T
        W, b = net.W[j], net.b[j]
        Wp, Wn = W.clamp(min=0.0), W.clamp(max=0.0)
        n_prev, B, cols = H_lo.shape
        M = torch.cat([torch.cat([Wp, Wn], dim=1), torch.cat([Wn, Wp], dim=1)])
        F = M @ torch.cat([H_lo, H_up]).reshape(2 * n_prev, B * cols)
        F = F.reshape(2 * W.shape[0], B, cols)
        F[..., -1] += b.repeat(2).unsqueeze(1)
        m_h = torch.maximum(r.a_lo, r.a_up) * self.mag
        m_h = m_h + torch.maximum(r.c_lo.abs(), r.c_up.abs())
        n = W.shape[0]
        return Forward(F[:n], F[n:], m_h @ net.absW[j].T + b.abs())

    def concretize(self, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
        mid, rad = (lo + hi) / 2.0, (hi - lo) / 2.0
        s = slack(self.mag)
        lower = (self.F_lo[..., :-1] * mid).sum(-1) - (self.F_lo[..., :-1].abs() * rad).sum(-1)
        upper = (self.F_up[..., :-1] * mid).sum(-1) + (self.F_up[..., :-1].abs() * rad).sum(-1)
        lower = lower.T + self.F_lo[..., -1].T - s
        upper = upper.T + self.F_up[..., -1].T + s
        return lower, upper
