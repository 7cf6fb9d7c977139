"""Converters for layout ops: Flatten, Reshape, Squeeze, Unsqueeze, Transpose, Concat.

The four reshaping ops become ``ops.Reshape`` with the per-sample target shape.  The
ONNX output shape is computed at batch size 1; an op that would merge, drop or move the
batch axis is unsupported (the IR keeps the batch axis first).
"""

from __future__ import annotations

from math import prod

import numpy as np
import onnx

from verinet.ir import ops as O
from verinet.onnx_import.context import ConvertContext, Shape, Unsupported, attr_int, attr_ints


def _emit_reshape(ctx: ConvertContext, node: onnx.NodeProto, target: Shape) -> None:
    if not target or target[0] != 1:
        raise Unsupported(f"output shape {list(target)} would merge or drop the batch axis")
    ctx.emit(O.Reshape(tuple(target[1:])), (ctx.dynamic(node.input[0]),), node.output[0])


def convert_flatten(ctx: ConvertContext, node: onnx.NodeProto) -> None:
    shape = ctx.shape(node.input[0])
    axis = attr_int(node, "axis", 1)
    axis = axis + len(shape) if axis < 0 else axis
    if axis == 0:
        raise Unsupported("axis=0 merges the batch axis into the features")
    _emit_reshape(ctx, node, (prod(shape[:axis]), prod(shape[axis:])))


def reshape_target(shape: Shape, spec: np.ndarray, allowzero: bool) -> Shape:
    """ONNX Reshape's output shape: 0 copies the input dim (unless ``allowzero``), -1 is
    inferred."""
    dims = [int(d) for d in np.asarray(spec).reshape(-1)]
    if allowzero and 0 in dims:
        raise Unsupported("allowzero=1 with a zero dimension (empty tensor)")
    out = []
    for i, d in enumerate(dims):
        if d == 0:
            if i >= len(shape):
                raise Unsupported(f"shape[{i}]=0 refers to a missing input dimension")
            d = shape[i]
        out.append(d)
    if out.count(-1) > 1 or any(d < -1 for d in out):
        raise Unsupported(f"invalid target shape {dims}")
    if -1 in out:
        known = prod(d for d in out if d != -1)
        if known == 0 or prod(shape) % known:
            raise Unsupported(f"cannot infer -1 in {dims} for input shape {list(shape)}")
        out[out.index(-1)] = prod(shape) // known
    if prod(out) != prod(shape):
        raise Unsupported(f"target shape {dims} does not match input shape {list(shape)}")
    return tuple(out)


def convert_reshape(ctx: ConvertContext, node: onnx.NodeProto) -> None:
    spec = ctx.const(node.input[1], "shape")
    allowzero = bool(attr_int(node, "allowzero", 0))
    _emit_reshape(ctx, node, reshape_target(ctx.shape(node.input[0]), spec, allowzero))


def _axes(ctx: ConvertContext, node: onnx.NodeProto) -> tuple[int, ...] | None:
    """Squeeze/Unsqueeze axes: an attribute before opset 13, an optional input after."""
    if ctx.opset < 13:
        return attr_ints(node, "axes")
    value = ctx.optional_const(node, 1, "axes")
    return None if value is None else tuple(int(v) for v in np.asarray(value).reshape(-1))


def convert_squeeze(ctx: ConvertContext, node: onnx.NodeProto) -> None:
    shape = ctx.shape(node.input[0])
    axes = _axes(ctx, node)
    if axes is None:
        raise Unsupported("no axes: squeezing every size-1 axis drops the batch axis")
    axes = tuple(a + len(shape) if a < 0 else a for a in axes)
    if 0 in axes:
        raise Unsupported("axes include 0: squeezing drops the batch axis")
    if any(not 0 <= a < len(shape) or shape[a] != 1 for a in axes):
        raise Unsupported(f"axes {list(axes)} are not size-1 axes of shape {list(shape)}")
    _emit_reshape(ctx, node, tuple(d for i, d in enumerate(shape) if i not in axes))


def convert_unsqueeze(ctx: ConvertContext, node: onnx.NodeProto) -> None:
    shape = ctx.shape(node.input[0])
    axes = _axes(ctx, node)
    if not axes:
        raise Unsupported("missing axes")
    rank = len(shape) + len(axes)
    norm = sorted(a + rank if a < 0 else a for a in axes)
    if len(set(norm)) != len(norm) or any(not 0 <= a < rank for a in norm):
        raise Unsupported(f"invalid axes {list(axes)} for output rank {rank}")
    if 0 in norm:
        raise Unsupported("axes include 0: unsqueezing moves the batch axis")
    dims = iter(shape)
    _emit_reshape(ctx, node, tuple(1 if i in norm else next(dims) for i in range(rank)))


def convert_transpose(ctx: ConvertContext, node: onnx.NodeProto) -> None:
    rank = len(ctx.shape(node.input[0]))
    perm = attr_ints(node, "perm", tuple(reversed(range(rank))))
    assert perm is not None
    if sorted(perm) != list(range(rank)):
        raise Unsupported(f"perm {list(perm)} is not a permutation of {rank} axes")
    if perm[0] != 0:
        raise Unsupported(f"perm[0]={perm[0]} moves the batch axis")
    ctx.emit(O.Transpose(tuple(perm)), (ctx.dynamic(node.input[0]),), node.output[0])


def convert_concat(ctx: ConvertContext, node: onnx.NodeProto) -> None:
    """Concat along a non-batch axis; constant inputs become Const nodes."""
    names = [n for n in node.input if n]
    ranks = {len(ctx.shape(n)) for n in names}
    if len(ranks) != 1:
        raise Unsupported("inputs of different rank")
    rank = ranks.pop()
    axis = attr_int(node, "axis", 0)
    axis = axis + rank if axis < 0 else axis
    if axis == 0:
        raise Unsupported("axis=0 concatenates along the batch axis")
    for n in names:
        if ctx.is_const(n) and ctx.shape(n)[0] != 1:
            raise Unsupported(f"constant '{n}' has batch dimension {ctx.shape(n)[0]}")
    ctx.emit(O.Concat(axis, len(names)), tuple(ctx.operand(n) for n in names), node.output[0])
