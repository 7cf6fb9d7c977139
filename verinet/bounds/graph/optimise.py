"""Optimised relaxations (alpha-CROWN) on the graph, for final and intermediate bounds.

:func:`optimise` finds, for every row of a linear objective on any node, the relaxation
parameters of every nonlinear node before it (one set per box, row and unit) by projected
Adam ascent on the sum of the rows' lower bounds, on a float32 surrogate of the state
(:func:`cast_state`) when asked; every parameter value in [0, 1] is a sound relaxation, so
the caller bounds the best ones soundly afterwards.  :func:`tighten_node` does so for the
unstable units of an intermediate node, each side of each unit its own row (as
alpha-beta-CROWN optimises intermediate layers), and intersects the result with the
node's bounds.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from verinet.bounds.graph.propagate import (
    GraphOptions,
    GraphState,
    backward,
    concretize,
    unit_rows,
)
from verinet.optim import Adam


def optimise(st: GraphState, spec: Tensor, iterations: int, lr: float,
             opt_dtype: torch.dtype | None, stop: Callable[[], bool] | None = None,
             target: str | None = None) -> dict[str, Tensor]:
    """The best relaxation parameters (P, B, K, *shape) per nonlinear node for the lower
    bounds of the rows ``spec`` (B, K, size) of node ``target`` (default: the output), by
    projected Adam ascent."""
    gm = st.gm
    target = gm.output_name if target is None else target
    before = set(gm.ancestors(target))
    names = [n for n in gm.nonlinear() if st.params.get(n) is not None and n in before]
    B, K = spec.shape[:2]
    if not names or iterations == 0:
        return {n: st.params[n].expand(-1, -1, K, *([-1] * len(gm.shape[n]))).clone()
                for n in names}  # type: ignore[union-attr]
    work = st if opt_dtype is None or opt_dtype == st.options.dtype else cast_state(st, opt_dtype)
    A0 = spec.to(work.options.dtype).reshape((B, K) + gm.shape[target])
    params = {n: st.params[n].to(work.options.dtype)  # type: ignore[union-attr]
              .expand(-1, -1, K, *([-1] * len(gm.shape[n]))).clone().requires_grad_(True)
              for n in names}
    opt = Adam(list(params.values()), lr=lr)
    best_val = torch.full((B, K), -torch.inf, dtype=work.options.dtype, device=spec.device)
    best = {n: p.detach().clone() for n, p in params.items()}
    for it in range(iterations + 1):
        relax = {n: work.relaxation(n, p) for n, p in params.items()}
        coef, const, mag = backward(work, target, A0, relax, track=False)
        bound = concretize(work, coef, const, mag)
        with torch.no_grad():
            better = bound > best_val
            best_val = torch.where(better, bound, best_val)
            for n, p in params.items():
                mask = better.reshape((1, B, K) + (1,) * len(gm.shape[n]))
                best[n] = torch.where(mask, p.detach(), best[n])
        if it == iterations or (stop is not None and stop()):
            break
        opt.zero_grad()
        opt.ascend(bound.nan_to_num(nan=0.0, neginf=0.0).sum())
        with torch.no_grad():
            for p in opt.params:
                p.clamp_(0.0, 1.0)
    return {n: b.to(st.options.dtype) for n, b in best.items()}


def cast_state(st: GraphState, dtype: torch.dtype) -> GraphState:
    """A copy of ``st`` in ``dtype`` (an optimisation surrogate: not rounded outward)."""
    options = GraphOptions(dtype, st.options.device, st.options.intermediate,
                           st.options.chunk_elems)
    out = GraphState(st.gm, options, st.gm.rules_on(dtype, options.device),
                     st.gm.slack(dtype) if dtype in (torch.float32, torch.float64) else st.slack)
    out.lo = {k: v.to(dtype) for k, v in st.lo.items()}
    out.hi = {k: v.to(dtype) for k, v in st.hi.items()}
    out.mag = {k: v.to(dtype) for k, v in st.mag.items()}
    out.params = {k: None if v is None else v.to(dtype) for k, v in st.params.items()}
    out.relax = {k: out.relaxation(k, None) for k in st.relax}
    return out




def tighten_node(st: GraphState, z: str, mask: Tensor, iterations: int, lr: float = 0.1,
                 stop: Callable[[], bool] | None = None) -> None:
    """Tighten node ``z``'s bounds of the units in ``mask`` (B, *shape; their union) by
    alpha-CROWN with one parameter set per unit and side."""
    gm = st.gm
    B = st.batch
    units = torch.nonzero(mask.reshape(B, -1).any(dim=0)).reshape(-1)
    if not len(units) or iterations <= 0:
        return
    width = sum(gm.size(n) for n in gm.nonlinear() if n in set(gm.ancestors(z)))
    widest = max(gm.size(n) for n in gm.ancestors(z))
    rows = max(1, st.options.chunk_elems // (2 * B * max(width, widest)))
    lo = st.lo[z].reshape(B, -1).clone()
    hi = st.hi[z].reshape(B, -1).clone()
    for start in range(0, len(units), rows):
        if stop is not None and stop():
            break
        idx = units[start: start + rows]
        k = len(idx)
        A = unit_rows(B, idx, gm.size(z), lo)
        params = optimise(st, A, iterations, lr, torch.float32, stop, target=z)
        with torch.no_grad():
            relax = {n: st.relaxation(n, p) for n, p in params.items()}
            coef, const, mag = backward(st, z, A.reshape((B, 2 * k) + gm.shape[z]), relax)
            b = concretize(st, coef, const, mag).nan_to_num(nan=-torch.inf)
        lo[:, idx] = torch.maximum(lo[:, idx], b[:, :k])
        hi[:, idx] = torch.minimum(hi[:, idx], -b[:, k:])
    st.lo[z] = lo.reshape(st.lo[z].shape)
    st.hi[z] = torch.maximum(hi, lo).reshape(st.hi[z].shape)
