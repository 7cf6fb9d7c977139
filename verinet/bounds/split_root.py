"""The root of ReLU-splitting branch and bound: a box's pre-activation bounds.

CROWN's bounds, then (``iterations > 0``) each intermediate layer tightened in turn by
alpha-CROWN with its own lower slopes per bounded unit and side (as alpha-beta-CROWN
does for intermediate layers), every later layer using the tightened bounds.  Each side
of each unstable unit of layer ``j`` is posed as a one-row domain of the chain's prefix
up to ``j`` and bounded by :func:`verinet.bounds.split.optimise` and
:func:`verinet.bounds.split.objective` (sound for every slope in [0, 1]).  Measured on
mnist_relu_9_200 (ERAN idx 6453, eps 0.015): 581 -> 393 unstable units in about 3 s,
after which the root alone proves the property (BaB from CROWN's bounds: 200 s).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from verinet.bounds.crown import crown_bounds
from verinet.bounds.linear import DT, TorchChain
from verinet.bounds.split import (
    LOW,
    Domains,
    SplitOptions,
    SplitRoot,
    domain_bounds,
    objective,
    optimise,
    relaxation_lines,
)
from verinet.ir.chain import Chain
from verinet.types import InputError


def make_root(
    chain: Chain, lower: np.ndarray, upper: np.ndarray, iterations: int = 20, lr: float = 0.1,
    stop: Callable[[], bool] | None = None,
) -> SplitRoot:
    """Pre-activation bounds of ``chain`` over the box (ReLU chains only): CROWN's, then
    (``iterations > 0``) tightened layer by layer by alpha-CROWN with one set of lower
    slopes per bounded unit and side (:func:`_tighten_layer`)."""
    if not chain.is_relu:
        raise InputError("ReLU splitting needs a ReLU chain")
    res = crown_bounds(chain, lower, upper, return_intermediate=True)
    net = TorchChain.of(chain)
    lo = torch.tensor(np.asarray(lower, dtype=np.float64).reshape(-1), dtype=DT)
    hi = torch.tensor(np.asarray(upper, dtype=np.float64).reshape(-1), dtype=DT)
    pre = [(torch.tensor(a[0], dtype=DT), torch.tensor(b[0], dtype=DT))
           for a, b in zip(res.pre_lower, res.pre_upper, strict=True)]
    for j in range(1, len(pre) if iterations > 0 else 0):
        if stop is not None and stop():
            break
        pre[j] = _tighten_layer(_root_of(net, lo, hi, pre[:j], j), pre[j], iterations, lr, stop)
    return _root_of(net, lo, hi, pre, len(pre))


def _root_of(net: TorchChain, lo: Tensor, hi: Tensor, pre: list[tuple[Tensor, Tensor]],
             depth: int) -> SplitRoot:
    """The root of the chain's first ``depth + 1`` affine layers with bounds ``pre``."""
    sub = TorchChain(net.W[: depth + 1], net.absW[: depth + 1], net.b[: depth + 1],
                     net.kinds[:depth])
    index = tuple(torch.nonzero((a < 0) & (b > 0)).reshape(-1) for a, b in pre)
    offsets = tuple(int(v) for v in np.concatenate([[0], np.cumsum([len(i) for i in index])]))
    net32 = TorchChain(tuple(t.to(LOW) for t in sub.W), tuple(t.to(LOW) for t in sub.absW),
                       tuple(t.to(LOW) for t in sub.b), sub.kinds)
    return SplitRoot(sub, lo, hi, tuple(a for a, _ in pre), tuple(b for _, b in pre), index,
                     offsets, net32)


def _tighten_layer(
    prefix: SplitRoot, bounds: tuple[Tensor, Tensor], iterations: int, lr: float,
    stop: Callable[[], bool] | None,
) -> tuple[Tensor, Tensor]:
    """Tighter bounds of the unstable units of the prefix's last affine layer: each side
    of each unit is a one-row "domain" of the prefix with its own slopes, optimised by
    :func:`optimise` and bounded soundly by :func:`objective`."""
    lb, ub = bounds
    rows = torch.nonzero((lb < 0) & (ub > 0)).reshape(-1)
    r = len(rows)
    if not r or not prefix.size:
        return bounds
    B, m = 2 * r, lb.shape[0]
    C = torch.zeros((B, 1, m), dtype=DT)
    C[torch.arange(r), 0, rows] = 1.0
    C[torch.arange(r, B), 0, rows] = -1.0
    dom = _root_domains(prefix, B)
    with torch.no_grad():
        pre, vmag, _ = domain_bounds(prefix, dom, False)
        lines = relaxation_lines(prefix, pre, vmag)
    offset = torch.zeros((B, 1), dtype=DT)
    opts = SplitOptions(iterations=iterations, lr_alpha=lr)
    alpha, beta = optimise(prefix, lines, dom.split, dom.alpha, dom.beta, C, offset, opts, stop)
    with torch.no_grad():
        bound = objective(prefix, lines, dom.split, alpha, beta, C, offset, True, vmag[-1])[0]
        bound = bound.nan_to_num(nan=-torch.inf, posinf=-torch.inf)  # overflow proves nothing
    lb, ub = lb.clone(), ub.clone()
    lb[rows] = torch.maximum(lb[rows], bound[:r, 0])
    ub[rows] = torch.minimum(ub[rows], -bound[r:, 0])
    return lb, torch.maximum(ub, lb)


def _root_domains(root: SplitRoot, n: int) -> Domains:
    """``n`` copies of the root domain (no splits, CROWN's slopes)."""
    lo, hi = root.flat_bounds()
    U = root.size
    return Domains(torch.zeros((n, U), dtype=torch.int8), (hi > -lo).to(DT).expand(n, U),
                   torch.zeros((n, U), dtype=DT), lo.expand(n, U), hi.expand(n, U),
                   torch.full((n,), len(root.index), dtype=torch.int64))
