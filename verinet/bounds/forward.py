"""Forward symbolic linear bounds, batched over boxes (cheap for low-dimensional inputs).

Every unit carries a lower and an upper linear form in the normalised input
``e in [-1, 1]^n`` (``x = mid + rad * e``): ``c + G e``, with ``G`` stored as
(B, n, units).  Affine layers combine the forms
by the sign of the weights; an unstable ReLU with pre-activation bounds ``[l, u]`` maps
the upper form ``U`` to ``s (U - l)`` with ``s = u / (u - l)`` (valid because
``relu(z) <= s (z - l)`` on ``[l, u]`` and ``z <= U``) and the lower form ``L`` to
``alpha L`` with CROWN's adaptive ``alpha`` (valid because ``relu(z) >= alpha z >= alpha L``
for ``alpha in [0, 1]``).  Cost per layer is ``O(B * out * in * n)``, against
``O(B * out * in * width)`` per back-substituted layer for CROWN, which makes it the
intermediate-bound engine of input-splitting branch and bound.

Floating-point tolerance: float64 throughout; after every affine layer the constant of
each form is moved outward by ``fp_slack`` of the magnitude of everything summed into it
(see :mod:`verinet.bounds.interval`), so the forms stay sound for the real-valued network.
Sigmoid/tanh layers fall back to interval bounds (constant forms).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from verinet.bounds.fp import FLOAT64
from verinet.ir.chain import Activation, Affine, Chain

DT = torch.float64


def _slack(mag: Tensor) -> Tensor:
    return FLOAT64(mag)


def _affine(Lc: Tensor, LG: Tensor, Uc: Tensor, UG: Tensor, W: Tensor,
            b: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    WpT = W.clamp(min=0).T
    WnT = W.clamp(max=0).T
    # Forms are stored as G (B, n, units): one batched 2-D matmul per product.
    nLG = LG @ WpT + UG @ WnT
    nUG = UG @ WpT + LG @ WnT
    nLc = Lc @ WpT + Uc @ WnT + b
    nUc = Uc @ WpT + Lc @ WnT + b
    absW = W.abs()
    mag = (torch.maximum(Lc.abs(), Uc.abs()) + torch.maximum(LG.abs(), UG.abs()).sum(1)) @ absW.T
    s = _slack(mag + b.abs())
    return nLc - s, nLG, nUc + s, nUG


def _concretise(c: Tensor, G: Tensor, upper: bool) -> Tensor:
    r = G.abs().sum(1)
    mag = c.abs() + r
    return c + r + _slack(mag) if upper else c - r - _slack(mag)


def forward_bounds(
    chain: Chain, lower: np.ndarray, upper: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Sound bounds (B, units) on the output of every affine layer, for boxes (B, n)."""
    lo = torch.as_tensor(np.atleast_2d(lower), dtype=DT)
    hi = torch.as_tensor(np.atleast_2d(upper), dtype=DT)
    mid, rad = (lo + hi) / 2, (hi - lo) / 2
    Lc, Uc = mid.clone(), mid.clone()
    LG = torch.diag_embed(rad)
    UG = LG.clone()
    out: list[tuple[np.ndarray, np.ndarray]] = []
    zl = zu = lo
    for layer in chain.layers:
        if isinstance(layer, Affine):
            W = torch.tensor(layer.weight, dtype=DT)
            b = torch.tensor(layer.bias, dtype=DT)
            Lc, LG, Uc, UG = _affine(Lc, LG, Uc, UG, W, b)
            zl = _concretise(Lc, LG, upper=False)
            zu = torch.maximum(_concretise(Uc, UG, upper=True), zl)
            out.append((zl.numpy(), zu.numpy()))
        else:
            Lc, LG, Uc, UG = _activation(layer, zl, zu, Lc, LG, Uc, UG)
    return out


def _activation(act: Activation, lo: Tensor, hi: Tensor, Lc: Tensor, LG: Tensor, Uc: Tensor,
                UG: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    if act.kind != "relu":  # monotone: constant forms act(lo) <= act(z) <= act(hi)
        fl = torch.as_tensor(act.apply(lo.numpy()), dtype=DT)
        fu = torch.as_tensor(act.apply(hi.numpy()), dtype=DT)
        zeros = torch.zeros_like(LG)
        return fl - _slack(fl.abs()), zeros, fu + _slack(fu.abs()), zeros.clone()
    active = lo >= 0
    inactive = hi <= 0
    unstable = ~(active | inactive)
    denom = torch.where(unstable, hi - lo, torch.ones_like(hi))
    s = torch.where(unstable, hi / denom, active.to(DT))
    up_shift = torch.where(unstable, -s * lo, torch.zeros_like(lo))
    alpha = torch.where(unstable, (hi > -lo).to(DT), active.to(DT))
    nUc = s * Uc + up_shift
    nUG = s.unsqueeze(1) * UG
    nLc = alpha * Lc
    nLG = alpha.unsqueeze(1) * LG
    mag = (s * Uc).abs() + up_shift.abs()
    return nLc, nLG, nUc + _slack(mag), nUG
