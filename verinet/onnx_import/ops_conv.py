"""Converters for 2-D convolution, batch normalisation, pooling and padding (NCHW).

``auto_pad`` is resolved to explicit ``(top, left, bottom, right)`` pads; batch
normalisation is folded (in float64) into the preceding Conv when that Conv output has
no other consumer, and becomes a ``ChannelAffine`` otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import prod

import numpy as np
import onnx

from verinet.ir import ops as O
from verinet.onnx_import.context import (
    ConvertContext,
    Unsupported,
    attr_float,
    attr_int,
    attr_ints,
    attr_str,
)

Pads = tuple[int, int, int, int]


def _auto_pad(node: onnx.NodeProto) -> str:
    return attr_str(node, "auto_pad", "NOTSET")


def resolve_pads(node: onnx.NodeProto, hw: Sequence[int], k_eff: Sequence[int],
                 strides: Sequence[int]) -> Pads:
    """Explicit ``(top, left, bottom, right)`` pads from ``pads`` or ``auto_pad``."""
    mode = _auto_pad(node)
    if mode == "NOTSET":
        pads = attr_ints(node, "pads", (0, 0, 0, 0))
        assert pads is not None
        if len(pads) != 4:
            raise Unsupported(f"pads {list(pads)} must have 4 entries")
        if min(pads) < 0:
            raise Unsupported(f"negative pads {list(pads)}")
        return (pads[0], pads[1], pads[2], pads[3])
    if mode == "VALID":
        return (0, 0, 0, 0)
    if mode not in ("SAME_UPPER", "SAME_LOWER"):
        raise Unsupported(f"auto_pad={mode}")
    begin, end = [], []
    for size, k, s in zip(hw, k_eff, strides, strict=True):
        out = -(-size // s)
        total = max(0, (out - 1) * s + k - size)
        small, large = total // 2, total - total // 2
        begin.append(small if mode == "SAME_UPPER" else large)
        end.append(large if mode == "SAME_UPPER" else small)
    return (begin[0], begin[1], end[0], end[1])


def _pair(node: onnx.NodeProto, name: str) -> tuple[int, int]:
    value = attr_ints(node, name, (1, 1))
    assert value is not None
    if len(value) != 2:
        raise Unsupported(f"{name} {list(value)} must have 2 entries")
    return (value[0], value[1])


def convert_conv(ctx: ConvertContext, node: onnx.NodeProto) -> None:
    weight = np.asarray(ctx.const(node.input[1], "weight W"), dtype=np.float64)
    if weight.ndim != 4:
        raise Unsupported(f"kernel rank {weight.ndim - 2}: only 2-D convolution is supported")
    kernel = attr_ints(node, "kernel_shape", weight.shape[2:])
    if tuple(kernel or ()) != weight.shape[2:]:
        raise Unsupported(f"kernel_shape {kernel} != weight shape {list(weight.shape[2:])}")
    bias = ctx.optional_const(node, 2, "bias B")
    strides, dilations = _pair(node, "strides"), _pair(node, "dilations")
    groups = attr_int(node, "group", 1)
    hw = ctx.shape(node.input[0])[2:]
    if len(hw) != 2:
        raise Unsupported(f"input rank {len(hw) + 2} for a 2-D kernel")
    k_eff = [(k - 1) * d + 1 for k, d in zip(weight.shape[2:], dilations, strict=True)]
    pads = resolve_pads(node, hw, k_eff, strides)
    b = None if bias is None else np.asarray(bias, dtype=np.float64).reshape(-1)
    op = O.Conv(weight, b, strides=strides, pads=pads, dilations=dilations, groups=groups)
    ctx.emit(op, (ctx.dynamic(node.input[0]),), node.output[0])


def _pool_common(ctx: ConvertContext, node: onnx.NodeProto) -> tuple[
        tuple[int, int], tuple[int, int], tuple[int, int], Pads, bool]:
    """kernel, strides, dilations, pads and ceil_mode of MaxPool/AveragePool."""
    kernel = attr_ints(node, "kernel_shape")
    if kernel is None or len(kernel) != 2:
        rank = "?" if kernel is None else len(kernel)
        raise Unsupported(f"kernel rank {rank}: only 2-D pooling is supported")
    strides, dilations = _pair(node, "strides"), _pair(node, "dilations")
    ceil_mode = bool(attr_int(node, "ceil_mode", 0))
    if ceil_mode and _auto_pad(node) != "NOTSET":
        raise Unsupported(f"ceil_mode=1 with auto_pad={_auto_pad(node)}")
    if dilations != (1, 1) and _auto_pad(node) != "NOTSET":
        # onnxruntime and the ONNX reference disagree on these output sizes
        raise Unsupported(f"dilations {list(dilations)} with auto_pad={_auto_pad(node)}")
    hw = ctx.shape(node.input[0])[2:]
    if len(hw) != 2:
        raise Unsupported(f"input rank {len(hw) + 2}: only NCHW inputs are supported")
    k_eff = [(k - 1) * d + 1 for k, d in zip(kernel, dilations, strict=True)]
    pads = resolve_pads(node, hw, k_eff, strides)
    return (kernel[0], kernel[1]), strides, dilations, pads, ceil_mode


def convert_maxpool(ctx: ConvertContext, node: onnx.NodeProto) -> None:
    if attr_int(node, "storage_order", 0):  # type: ignore[arg-type]
        raise Unsupported("storage_order=1")
    if len(node.output) > 1 and ctx.is_used(node.output[1]):
        raise Unsupported("the Indices output is used")
    kernel, strides, dilations, pads, ceil_mode = _pool_common(ctx, node)
    op = O.MaxPool(kernel, strides, pads=pads, dilations=dilations, ceil_mode=ceil_mode)
    ctx.emit(op, (ctx.dynamic(node.input[0]),), node.output[0])


def convert_avgpool(ctx: ConvertContext, node: onnx.NodeProto) -> None:
    kernel, strides, dilations, pads, ceil_mode = _pool_common(ctx, node)
    if dilations != (1, 1):
        raise Unsupported(f"dilations {list(dilations)}")
    include = bool(attr_int(node, "count_include_pad", 0))
    op = O.AveragePool(kernel, strides, pads=pads, count_include_pad=include, ceil_mode=ceil_mode)
    ctx.emit(op, (ctx.dynamic(node.input[0]),), node.output[0])


def convert_global_avgpool(ctx: ConvertContext, node: onnx.NodeProto) -> None:
    if len(ctx.shape(node.input[0])) < 3:
        raise Unsupported("input has no spatial axes")
    ctx.emit(O.GlobalAveragePool(), (ctx.dynamic(node.input[0]),), node.output[0])


def convert_batchnorm(ctx: ConvertContext, node: onnx.NodeProto) -> None:
    """Inference-mode BatchNormalization: ``(x - mean) / sqrt(var + eps) * scale + B``."""
    if attr_int(node, "training_mode", 0):  # type: ignore[arg-type]
        raise Unsupported("training_mode=1")
    if any(ctx.is_used(o) for o in node.output[1:]):
        raise Unsupported("the running mean/variance outputs are used")
    roles = ("scale", "bias B", "input_mean", "input_var")
    scale, shift, mean, var = (
        np.asarray(ctx.const(node.input[i + 1], r), dtype=np.float64) for i, r in enumerate(roles)
    )
    eps = attr_float(node, "epsilon", 1e-5)
    s = scale / np.sqrt(var + eps)
    t = shift - mean * s
    x = ctx.dynamic(node.input[0])
    shape = ctx.shape(node.input[0])
    spatial = attr_int(node, "spatial", 1) if ctx.opset < 9 else 1  # type: ignore[arg-type]
    if spatial == 0 and s.size == prod(shape[1:]) and s.size != shape[1]:
        full = (1, *shape[1:])
        _batchnorm_elementwise(ctx, node, x, s.reshape(full), t.reshape(full))
        return
    if len(shape) < 2 or s.size != shape[1]:
        raise Unsupported(f"parameters of size {s.size} do not match {shape[1]} channels")
    s, t = s.reshape(-1), t.reshape(-1)
    prev = ctx.producer(x)
    if prev is not None and isinstance(prev.op, O.Conv) and _exclusive(ctx, x, node):
        conv = prev.op
        w = conv.weight * s.reshape(-1, 1, 1, 1)
        b = (np.zeros_like(s) if conv.bias is None else conv.bias) * s + t
        ctx.replace(x, O.Conv(w, b, conv.strides, conv.pads, conv.dilations, conv.groups))
        ctx.bind(node.output[0], x)
        ctx.note(f"BatchNormalization '{node.name or node.output[0]}' folded into Conv '{x}'")
        return
    ctx.emit(O.ChannelAffine(s, t), (x,), node.output[0])


def _batchnorm_elementwise(ctx: ConvertContext, node: onnx.NodeProto, x: str,
                           s: np.ndarray, t: np.ndarray) -> None:
    """spatial=0 (opset < 9): per-activation statistics as Mul and Add with constants."""
    out = node.output[0]
    scaled = ctx.emit(O.Binary("mul"), (x, ctx.const_node(s, f"{out}__scale")),
                      hint=f"{out}__scaled")
    ctx.emit(O.Binary("add"), (scaled, ctx.const_node(t, f"{out}__shift")), out)


def _exclusive(ctx: ConvertContext, ir_name: str, node: onnx.NodeProto) -> bool:
    """True when IR tensor ``ir_name`` is used by ``node`` only (no IR node, no other ONNX
    consumer, no graph output), so it may be rewritten in place."""
    if any(ir_name in n.inputs for n in ctx.nodes):
        return False
    for onnx_name, target in ctx.tensors.items():
        if target != ir_name:
            continue
        if onnx_name in ctx.output_aliases:
            return False
        for user in ctx.consumers.get(onnx_name, []):
            is_alias = all(ctx.tensors.get(o) == ir_name for o in user.output if o)
            if user is not node and not is_alias:
                return False
    return True


def convert_pad(ctx: ConvertContext, node: onnx.NodeProto) -> None:
    """Zero constant padding of the spatial axes of a 4-D tensor, as an identity
    depthwise Conv (exact: each output is ``1.0 * x`` or 0)."""
    mode = attr_str(node, "mode", "constant")
    if mode != "constant":
        raise Unsupported(f"mode={mode}")
    shape = ctx.shape(node.input[0])
    begin, end = _pad_amounts(ctx, node, len(shape))
    if min(begin + end) < 0:
        raise Unsupported("negative pads (cropping)")
    if len(shape) != 4 or any(begin[:2]) or any(end[:2]):
        raise Unsupported("only padding of the spatial axes of a 4-D tensor is supported")
    x = ctx.dynamic(node.input[0])
    if not any(begin + end):
        ctx.bind(node.output[0], x)
        return
    c = shape[1]
    op = O.Conv(np.ones((c, 1, 1, 1)), None, pads=(begin[2], begin[3], end[2], end[3]), groups=c)
    ctx.emit(op, (x,), node.output[0])
    ctx.note("Pad lowered to an identity depthwise Conv")


def _pad_amounts(ctx: ConvertContext, node: onnx.NodeProto, rank: int
                 ) -> tuple[list[int], list[int]]:
    """Per-axis (begin, end) pads: attributes before opset 11, inputs after."""
    if ctx.opset < 11:
        pads = list(attr_ints(node, "pads", ()) or ())
        value = attr_float(node, "value", 0.0)
        axes: list[int] = list(range(rank))
    else:
        pads = [int(p) for p in np.asarray(ctx.const(node.input[1], "pads")).reshape(-1)]
        v = ctx.optional_const(node, 2, "constant_value")
        value = 0.0 if v is None else float(np.asarray(v).reshape(-1)[0])
        a = ctx.optional_const(node, 3, "axes")
        axes = list(range(rank)) if a is None else [int(i) for i in np.asarray(a).reshape(-1)]
    if value != 0.0:
        raise Unsupported(f"constant_value={value}: only zero padding is supported")
    if len(pads) != 2 * len(axes):
        raise Unsupported(f"pads {pads} do not match {len(axes)} axes")
    begin, end = [0] * rank, [0] * rank
    for k, ax in enumerate(axes):
        ax = ax + rank if ax < 0 else ax
        begin[ax], end[ax] = pads[k], pads[k + len(axes)]
    return begin, end
