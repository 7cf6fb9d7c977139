"""CROWN and alpha-CROWN on the graph: sound bounds of ``C f(x)`` over batches of boxes.

:func:`graph_crown` forms every node's bounds (:func:`~verinet.bounds.graph.propagate.
build_state`) and back-substitutes ``C`` and ``-C`` from the output in one pass;
:func:`graph_alpha_crown` then optimises the relaxation parameters of every nonlinear node
(ReLU lower slopes, LeakyReLU/Clip lines, Sigmoid/Tanh tangent points, MaxPool weights),
one set per box, objective row and unit, by projected Adam ascent on the sum of the lower
bounds.  Every parameter in ``[0, 1]`` is a sound relaxation, so the optimisation may run
on a float32 copy (``opt_dtype``); the best parameters are then bounded soundly in the
engine's dtype, and the result is never looser than CROWN's.  Intermediate bounds stay
CROWN's.  Results are :class:`~verinet.bounds.crown.CrownResult` (the chain engine's type):
``pre_lower``/``pre_upper`` hold the bounds of the inputs of the nonlinear nodes in
:meth:`GraphModel.nonlinear` order, flattened.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from verinet.bounds.crown import CrownResult
from verinet.bounds.graph.model import GraphModel
from verinet.bounds.graph.optimise import optimise
from verinet.bounds.graph.propagate import (
    DEFAULT_OPTIONS,
    GraphOptions,
    GraphState,
    backward,
    build_state,
    concretize,
    input_mag,
    spec_interval,
)
from verinet.types import InputError

ArrayLike = np.ndarray | Tensor


def check_boxes(gm: GraphModel, lower: ArrayLike, upper: ArrayLike,
                C: ArrayLike | None) -> tuple[Tensor, Tensor, Tensor]:
    """Validated float64 ``(lo (B, n), hi (B, n), C (B, k, m))``."""
    lo, hi = (_batch(v, name) for v, name in ((lower, "lower"), (upper, "upper")))
    n, m = gm.network.n_inputs, gm.network.n_outputs
    if lo.shape != hi.shape or lo.shape[1] != n:
        raise InputError(f"boxes {tuple(lo.shape)}/{tuple(hi.shape)} do not match {n} inputs")
    if not (torch.isfinite(lo).all() and torch.isfinite(hi).all()):
        raise InputError("box bounds must be finite")
    if bool((lo > hi).any()):
        raise InputError("empty box: lower > upper")
    Ct = torch.eye(m, dtype=torch.float64) if C is None else _tensor(C)
    if Ct.ndim == 2:
        Ct = Ct.expand(lo.shape[0], *Ct.shape)
    if Ct.ndim != 3 or Ct.shape[-1] != m or Ct.shape[0] != lo.shape[0]:
        raise InputError(f"C must be (k, {m}) or ({lo.shape[0]}, k, {m}), got {tuple(Ct.shape)}")
    return lo, hi, Ct


def _tensor(x: ArrayLike) -> Tensor:
    if isinstance(x, Tensor):
        return x.detach().to(torch.float64)
    return torch.tensor(np.asarray(x, dtype=np.float64))


def _batch(x: ArrayLike, name: str) -> Tensor:
    t = _tensor(x)
    if t.ndim == 1:
        t = t.unsqueeze(0)
    if t.ndim != 2:
        raise InputError(f"{name} must have shape (B, n) or (n,), got {tuple(t.shape)}")
    return t


def graph_crown(gm: GraphModel, lower: ArrayLike, upper: ArrayLike, C: ArrayLike | None = None,
                options: GraphOptions = DEFAULT_OPTIONS,
                return_intermediate: bool = False) -> CrownResult:
    """Sound bounds of ``C f(x)`` over each box ``lower[i] <= x <= upper[i]``.

    ``C``: (k, m) shared rows, (B, k, m) per box, or None for the identity."""
    lo, hi, Ct = check_boxes(gm, lower, upper, C)
    parts = []
    with torch.no_grad():
        for sl in _box_slices(gm, Ct, options):
            st = build_state(gm, lo[sl], hi[sl], options)
            parts.append(_final(st, Ct[sl].to(options.device, options.dtype)))
    return _assemble(gm, parts, return_intermediate)


def graph_alpha_crown(
    gm: GraphModel, lower: ArrayLike, upper: ArrayLike, C: ArrayLike | None = None,
    iterations: int = 20, lr: float = 0.1, options: GraphOptions = DEFAULT_OPTIONS,
    opt_dtype: torch.dtype | None = torch.float32, return_intermediate: bool = False,
    stop: Callable[[], bool] | None = None,
) -> CrownResult:
    """Like :func:`graph_crown` with optimised relaxations of the final bounds (lower and
    upper ends).  ``opt_dtype``: the dtype of the optimisation surrogate (None: the
    engine's); ``stop()`` returning True ends the ascent early (the bounds stay sound)."""
    if iterations < 0 or not lr > 0:
        raise InputError(f"need iterations >= 0 and lr > 0, got {iterations}, {lr}")
    lo, hi, Ct = check_boxes(gm, lower, upper, C)
    parts = []
    for sl in _box_slices(gm, Ct, options):
        with torch.no_grad():
            st = build_state(gm, lo[sl], hi[sl], options)
            base = _final(st, Ct[sl].to(options.device, options.dtype))
        spec = torch.cat([Ct[sl], -Ct[sl]], dim=1).to(options.device, options.dtype)
        params = optimise(st, spec, iterations, lr, opt_dtype, stop)
        with torch.no_grad():
            parts.append(_final(st, Ct[sl].to(options.device, options.dtype), params, base))
    return _assemble(gm, parts, return_intermediate)


def _box_slices(gm: GraphModel, C: Tensor, options: GraphOptions) -> list[slice]:
    widest = max(gm.size(n) for n in gm.order)
    size = max(1, options.chunk_elems // (2 * C.shape[1] * widest))
    B = C.shape[0]
    return [slice(s, min(s + size, B)) for s in range(0, B, size)]


Part = tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, GraphState]


def _final(st: GraphState, C: Tensor, params: dict[str, Tensor] | None = None,
           base: Part | None = None) -> Part:
    """(lower, upper, lower_coef, lower_offset, upper_coef, upper_offset, state); with
    ``params`` (for the stacked rows ``[C; -C]``), the better of them and ``base``."""
    gm = st.gm
    B, k = C.shape[:2]
    spec = torch.cat([C, -C], dim=1)
    relax = None if params is None else {n: st.relaxation(n, p) for n, p in params.items()}
    coef, const, mag = backward(st, gm.output_name, spec.reshape((B, 2 * k) + gm.shape[
        gm.output_name]), relax)
    bound = concretize(st, coef, const, mag).nan_to_num(nan=-torch.inf)
    offset = const - st.slack(mag + input_mag(st, coef))
    ibp_lo, ibp_hi = spec_interval(st, C)
    lower, upper = torch.maximum(bound[:, :k], ibp_lo), torch.minimum(-bound[:, k:], ibp_hi)
    out: Part = (lower, upper, coef[:, :k], offset[:, :k], -coef[:, k:], -offset[:, k:], st)
    if base is None:
        return out
    lo_better = out[0] > base[0]
    up_better = out[1] < base[1]
    pick = (torch.where(lo_better, out[0], base[0]), torch.where(up_better, out[1], base[1]),
            torch.where(lo_better.unsqueeze(-1), out[2], base[2]),
            torch.where(lo_better, out[3], base[3]),
            torch.where(up_better.unsqueeze(-1), out[4], base[4]),
            torch.where(up_better, out[5], base[5]), st)
    return pick


def _assemble(gm: GraphModel, parts: list[Part], return_intermediate: bool) -> CrownResult:
    def cat(i: int) -> np.ndarray:
        return torch.cat([p[i] for p in parts]).detach().to("cpu", torch.float64).numpy().copy()

    pre_lo: tuple[np.ndarray, ...] = ()
    pre_hi: tuple[np.ndarray, ...] = ()
    if return_intermediate:
        zs = [gm.inputs[n][0] for n in gm.nonlinear()]
        pre_lo = tuple(torch.cat([p[6].lo[z].reshape(p[6].batch, -1) for p in parts])
                       .to("cpu", torch.float64).numpy() for z in zs)
        pre_hi = tuple(torch.cat([p[6].hi[z].reshape(p[6].batch, -1) for p in parts])
                       .to("cpu", torch.float64).numpy() for z in zs)
    return CrownResult(cat(0), cat(1), cat(2), cat(3), cat(4), cat(5), pre_lo, pre_hi)
