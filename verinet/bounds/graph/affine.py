"""Bound rules of the affine ops: ``y = L(x_1, ..., x_k) + offset``.

Every rule works on tensors with one leading batch axis ``N`` and states its linear part
three ways, which is all the engine needs:

* ``lin(xs)``: ``L`` on the dynamic inputs ``xs`` (each ``(N, *in_i)``);
* ``alin(xs)``: ``|L|``, the same map with every coefficient replaced by its absolute
  value (interval radii and float-slack magnitudes);
* ``lin_t(A)``: the transpose ``L^T`` on output coefficients ``A`` ``(N, *out)``, one
  tensor per dynamic input -- backward propagation of linear bounds.  Convolutions go
  backwards by transposed convolution and pooling by ``fold``: no dense matrix is ever
  formed.

``offset`` (broadcastable to ``(1, *out)``, or None) collects the biases and the
contribution of constant inputs.  ``fan_in`` is the longest dot product one output
takes (for the float32 slack rule).  Parameters are float64 numpy arrays until
:meth:`on` converts them to torch tensors.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from math import prod

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from verinet.bounds.graph.model import NodeInfo, RuleError
from verinet.bounds.graph.windows import Window


class Rule:
    """Base of every rule: ``linear`` tells the engine how to propagate through it;
    ``exact`` marks pure data movement (no arithmetic, so no rounding to account for)."""

    linear = True
    exact = False
    fan_in = 1

    def on(self, dtype: torch.dtype, device: str | torch.device) -> Rule:
        """A copy with every numpy field as a tensor of ``dtype`` on ``device``."""
        changes = {}
        for f in fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            if isinstance(v, np.ndarray):
                changes[f.name] = torch.tensor(v, dtype=dtype, device=device)
        return replace(self, **changes)  # type: ignore[type-var]


def _dyn_shapes(info: NodeInfo) -> list[tuple[int, ...]]:
    return [s for s, d in zip(info.in_shapes, info.dynamic, strict=True) if d]


@dataclass(frozen=True)
class LinearRule(Rule):
    """``x @ weight.T + bias`` on the last axis."""

    weight: np.ndarray | Tensor
    absw: np.ndarray | Tensor
    offset: np.ndarray | Tensor | None
    fan_in: int = 1

    def lin(self, xs: list[Tensor]) -> Tensor:
        return xs[0] @ self.weight.T  # type: ignore[union-attr]

    def alin(self, xs: list[Tensor]) -> Tensor:
        return xs[0] @ self.absw.T  # type: ignore[union-attr]

    def lin_t(self, A: Tensor) -> list[Tensor]:
        return [A @ self.weight]  # type: ignore[operator]


def build_linear(info: NodeInfo) -> Rule:
    op = info.op
    W = np.asarray(op.weight)  # type: ignore[attr-defined]
    return LinearRule(W, np.abs(W), None if op.bias is None else np.asarray(op.bias),  # type: ignore[attr-defined]
                      fan_in=int(W.shape[1]) + 1)


@dataclass(frozen=True)
class ConvRule(Rule):
    """2-D convolution on the padded input; backwards by ``conv_transpose2d``, then the
    padding is cropped (its coefficients multiply zeros)."""

    weight: np.ndarray | Tensor
    absw: np.ndarray | Tensor
    offset: np.ndarray | Tensor | None
    strides: tuple[int, int]
    pads: tuple[int, int, int, int]
    dilations: tuple[int, int]
    groups: int
    in_shape: tuple[int, int, int]
    out_pad: tuple[int, int]
    fan_in: int = 1

    def _pad(self, x: Tensor) -> Tensor:
        t, left, b, r = self.pads
        return F.pad(x, (left, r, t, b)) if any(self.pads) else x

    def lin(self, xs: list[Tensor]) -> Tensor:
        return F.conv2d(self._pad(xs[0]), self.weight, None, self.strides, 0,  # type: ignore[arg-type]
                        self.dilations, self.groups)

    def alin(self, xs: list[Tensor]) -> Tensor:
        return F.conv2d(self._pad(xs[0]), self.absw, None, self.strides, 0,  # type: ignore[arg-type]
                        self.dilations, self.groups)

    def lin_t(self, A: Tensor) -> list[Tensor]:
        g = F.conv_transpose2d(A, self.weight, None, self.strides, 0, self.out_pad,  # type: ignore[arg-type]
                               self.groups, self.dilations)
        t, left, _, _ = self.pads
        _, h, w = self.in_shape
        return [g[:, :, t: t + h, left: left + w]]


def build_conv(info: NodeInfo) -> Rule:
    op = info.op
    W = np.asarray(op.weight)  # type: ignore[attr-defined]
    c, h, w = info.in_shapes[0][1:]
    t, left, b, r = op.pads  # type: ignore[attr-defined]
    hp, wp = h + t + b, w + left + r
    (sh, sw), (dh, dw) = op.strides, op.dilations  # type: ignore[attr-defined]
    kh, kw = W.shape[2:]
    ho, wo = info.shape[2:]
    out_pad = (hp - ((ho - 1) * sh + dh * (kh - 1) + 1), wp - ((wo - 1) * sw + dw * (kw - 1) + 1))
    if min(out_pad) < 0 or out_pad[0] >= max(sh, dh) or out_pad[1] >= max(sw, dw):
        raise RuleError(f"output size {ho}x{wo} does not match the convolution geometry")
    bias = None if op.bias is None else np.asarray(op.bias).reshape(-1, 1, 1)  # type: ignore[attr-defined]
    return ConvRule(W, np.abs(W), bias, tuple(op.strides), tuple(op.pads),  # type: ignore[attr-defined]
                    tuple(op.dilations), int(op.groups), (c, h, w), out_pad,  # type: ignore[attr-defined]
                    fan_in=int(prod(W.shape[1:])) + 1)


@dataclass(frozen=True)
class ScaleRule(Rule):
    """``x * scale + offset`` elementwise (``scale`` broadcast to the output; ``divide``:
    ``x / scale``), summed back over broadcast axes; covers folded batch norm and
    Add/Sub/Mul/Div with a constant."""

    scale: np.ndarray | Tensor | None
    offset: np.ndarray | Tensor | None
    divide: bool
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]

    def _apply(self, x: Tensor, s: Tensor | None) -> Tensor:
        if x.shape[1:] != self.out_shape:
            x = x.expand((x.shape[0],) + self.out_shape)
        if s is None:
            return x
        return x / s if self.divide else x * s

    def lin(self, xs: list[Tensor]) -> Tensor:
        return self._apply(xs[0], self.scale)  # type: ignore[arg-type]

    def alin(self, xs: list[Tensor]) -> Tensor:
        return self._apply(xs[0], None if self.scale is None else self.scale.abs())  # type: ignore[union-attr]

    def lin_t(self, A: Tensor) -> list[Tensor]:
        if self.scale is not None:
            A = A / self.scale if self.divide else A * self.scale
        return [unbroadcast(A, self.in_shape)]


def unbroadcast(A: Tensor, shape: tuple[int, ...]) -> Tensor:
    """Sum ``A`` (N, *out) over the axes a tensor of per-sample ``shape`` was broadcast on."""
    axes = tuple(i + 1 for i, (s, o) in enumerate(zip(shape, A.shape[1:], strict=True))
                 if s == 1 and o != 1)
    return A.sum(dim=axes, keepdim=True) if axes else A


def build_channel_affine(info: NodeInfo) -> Rule:
    op = info.op
    nd = len(info.shape) - 2
    scale = np.asarray(op.scale).reshape((-1,) + (1,) * nd)  # type: ignore[attr-defined]
    shift = np.asarray(op.shift).reshape((-1,) + (1,) * nd)  # type: ignore[attr-defined]
    return ScaleRule(scale, shift, False, info.in_shapes[0][1:], info.shape[1:])


@dataclass(frozen=True)
class SumRule(Rule):
    """``a * x_1 + b * x_2`` for two dynamic tensors (residual Add, Sub); ``signs`` =
    (a, b) in {+1, -1}."""

    signs: tuple[float, float]
    in_shapes: tuple[tuple[int, ...], tuple[int, ...]]
    out_shape: tuple[int, ...]
    offset: None = None
    fan_in: int = 2

    def _parts(self, xs: list[Tensor]) -> Tensor:
        n = max(x.shape[0] for x in xs)
        out = (n,) + self.out_shape
        a, b = (x.expand(out) for x in xs)
        return a + b if self.signs[1] > 0 else a - b

    def lin(self, xs: list[Tensor]) -> Tensor:
        return self._parts(xs)

    def alin(self, xs: list[Tensor]) -> Tensor:
        n = max(x.shape[0] for x in xs)
        return sum(x.expand((n,) + self.out_shape) for x in xs)  # type: ignore[return-value]

    def lin_t(self, A: Tensor) -> list[Tensor]:
        return [unbroadcast(A if s > 0 else -A, shp)
                for s, shp in zip(self.signs, self.in_shapes, strict=True)]


def build_binary(info: NodeInfo) -> Rule:
    kind = info.op.kind  # type: ignore[attr-defined]
    out = info.shape[1:]
    if any(len(s) != len(info.shape) for s, d in zip(info.in_shapes, info.dynamic, strict=True)
           if d):
        raise RuleError("broadcasting changes the rank of an input-dependent operand")
    if all(info.dynamic):
        if kind not in ("add", "sub"):
            raise RuleError(f"{kind} of two input-dependent tensors is not affine")
        return SumRule((1.0, 1.0 if kind == "add" else -1.0),
                       (info.in_shapes[0][1:], info.in_shapes[1][1:]), out)
    i = 0 if info.dynamic[0] else 1
    c = info.const[1 - i]
    assert c is not None
    in_shape = info.in_shapes[i][1:]
    c = np.broadcast_to(c, np.broadcast_shapes(c.shape, info.shape)).reshape(info.shape)[0]
    if kind == "add":
        return ScaleRule(None, c.copy(), False, in_shape, out)
    if kind == "sub":  # x - c, or c - x
        if i == 0:
            return ScaleRule(None, -c, False, in_shape, out)
        return ScaleRule(-np.ones_like(c), c.copy(), False, in_shape, out)
    if kind == "mul":
        return ScaleRule(c.copy(), None, False, in_shape, out)
    if i == 1:
        raise RuleError("division by an input-dependent tensor is not affine")
    if np.any(c == 0):
        raise RuleError("division by zero")
    return ScaleRule(c.copy(), None, True, in_shape, out)


@dataclass(frozen=True)
class ReshapeRule(Rule):
    exact = True
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    offset: None = None

    def lin(self, xs: list[Tensor]) -> Tensor:
        return xs[0].reshape((xs[0].shape[0],) + self.out_shape)

    alin = lin

    def lin_t(self, A: Tensor) -> list[Tensor]:
        return [A.reshape((A.shape[0],) + self.in_shape)]


def build_reshape(info: NodeInfo) -> Rule:
    return ReshapeRule(info.in_shapes[0][1:], info.shape[1:])


@dataclass(frozen=True)
class TransposeRule(Rule):
    exact = True
    perm: tuple[int, ...]
    offset: None = None

    def lin(self, xs: list[Tensor]) -> Tensor:
        return xs[0].permute(self.perm)

    alin = lin

    def lin_t(self, A: Tensor) -> list[Tensor]:
        inv = [0] * len(self.perm)
        for i, p in enumerate(self.perm):
            inv[p] = i
        return [A.permute(inv)]


def build_transpose(info: NodeInfo) -> Rule:
    perm = tuple(int(p) for p in info.op.perm)  # type: ignore[attr-defined]
    if perm[0] != 0:
        raise RuleError("transpose moves the batch axis")
    return TransposeRule(perm)


@dataclass(frozen=True)
class ConcatRule(Rule):
    """Concatenation along ``axis``; constant inputs become the offset."""

    axis: int
    sizes: tuple[int, ...]
    dynamic: tuple[bool, ...]
    in_shapes: tuple[tuple[int, ...], ...]
    offset: np.ndarray | Tensor | None

    def _cat(self, xs: list[Tensor]) -> Tensor:
        n = max(x.shape[0] for x in xs)
        it = iter(xs)
        parts = [next(it).expand((n,) + s) if d else
                 torch.zeros((n,) + s, dtype=xs[0].dtype, device=xs[0].device)
                 for d, s in zip(self.dynamic, self.in_shapes, strict=True)]
        return torch.cat(parts, dim=self.axis)

    lin = _cat
    alin = _cat

    def lin_t(self, A: Tensor) -> list[Tensor]:
        parts = torch.split(A, self.sizes, dim=self.axis)
        return [p for p, d in zip(parts, self.dynamic, strict=True) if d]


def build_concat(info: NodeInfo) -> Rule:
    axis = int(info.op.axis)  # type: ignore[attr-defined]
    if axis <= 0:
        raise RuleError("concatenation along the batch axis")
    sizes = tuple(s[axis] for s in info.in_shapes)
    offset = None
    if not all(info.dynamic):
        parts = [np.zeros(s[1:]) if d else np.broadcast_to(c, s).reshape(s)[0]
                 for s, d, c in zip(info.in_shapes, info.dynamic, info.const, strict=True)]
        offset = np.concatenate(parts, axis=axis - 1)
    return ConcatRule(axis, sizes, info.dynamic, tuple(s[1:] for s in info.in_shapes), offset)


@dataclass(frozen=True)
class AvgPoolRule(Rule):
    """Average pooling: window sums divided by the window counts (ONNX semantics)."""

    window: Window
    inv_count: np.ndarray | Tensor  # (Ho, Wo)
    offset: None = None
    fan_in: int = 1

    def lin(self, xs: list[Tensor]) -> Tensor:
        cols = self.window.unfold(xs[0], 0.0)  # (N, C, kk, Ho, Wo)
        return cols.sum(dim=2) * self.inv_count

    alin = lin

    def lin_t(self, A: Tensor) -> list[Tensor]:
        cols = (A * self.inv_count).unsqueeze(2).expand(-1, -1, self.window.kk, -1, -1)
        return [self.window.fold(cols)]


def build_avgpool(info: NodeInfo) -> Rule:
    op = info.op
    window = Window.of(op, info.in_shapes[0][1:])  # type: ignore[arg-type]
    counts = window.counts(bool(op.count_include_pad))  # type: ignore[attr-defined]
    if window.out_hw != tuple(info.shape[2:]):
        raise RuleError(f"pooled size {window.out_hw} differs from the graph's {info.shape[2:]}")
    return AvgPoolRule(window, 1.0 / counts, fan_in=window.kk + 1)


@dataclass(frozen=True)
class GlobalAvgPoolRule(Rule):
    spatial: tuple[int, ...]
    offset: None = None
    fan_in: int = 1

    def lin(self, xs: list[Tensor]) -> Tensor:
        return xs[0].mean(dim=tuple(range(2, xs[0].ndim)), keepdim=True)

    alin = lin

    def lin_t(self, A: Tensor) -> list[Tensor]:
        n = prod(self.spatial)
        return [A.expand(A.shape[:2] + self.spatial) / n]


def build_global_avgpool(info: NodeInfo) -> Rule:
    spatial = tuple(info.in_shapes[0][2:])
    return GlobalAvgPoolRule(spatial, fan_in=prod(spatial) + 1)
