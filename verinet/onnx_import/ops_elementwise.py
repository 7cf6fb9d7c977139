"""Converters for elementwise ops, activations and pass-through ops.

Each converter maps one ONNX node to IR nodes exactly (see :mod:`verinet.ir.ops`);
version-dependent attribute/input forms are handled per opset.
"""

from __future__ import annotations

import logging
from math import prod

import numpy as np
import onnx
from onnx import TensorProto

from verinet.ir import ops as O
from verinet.onnx_import.context import ConvertContext, Unsupported, attr_float, attr_int

logger = logging.getLogger(__name__)

_BINARY_KINDS = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div"}


def convert_binary(ctx: ConvertContext, node: onnx.NodeProto) -> None:
    """Add/Sub/Mul/Div with ONNX broadcasting; a constant operand becomes a Const node."""
    kind = _BINARY_KINDS[node.op_type]
    a, b = node.input[0], node.input[1]
    dyn = [n for n in (a, b) if ctx.is_dynamic(n)]
    ranks = {len(ctx.shape(n)) for n in dyn}
    if len(ranks) > 1:
        raise Unsupported("input-dependent operands of different rank mix the batch axis")
    rank = ranks.pop()
    for name in (a, b):
        if ctx.is_const(name):
            _check_const_broadcast(ctx.consts[name], rank, name)
    ctx.emit(O.Binary(kind), (ctx.operand(a), ctx.operand(b)), node.output[0])


def _check_const_broadcast(value: np.ndarray, rank: int, name: str) -> None:
    shape = np.shape(value)
    if len(shape) > rank or (len(shape) == rank and rank > 0 and shape[0] != 1):
        raise Unsupported(f"constant '{name}' of shape {list(shape)} broadcasts over the batch")


def convert_relu(ctx: ConvertContext, node: onnx.NodeProto) -> None:
    ctx.emit(O.Relu(), (ctx.dynamic(node.input[0]),), node.output[0])


def convert_sigmoid(ctx: ConvertContext, node: onnx.NodeProto) -> None:
    ctx.emit(O.Sigmoid(), (ctx.dynamic(node.input[0]),), node.output[0])


def convert_tanh(ctx: ConvertContext, node: onnx.NodeProto) -> None:
    ctx.emit(O.Tanh(), (ctx.dynamic(node.input[0]),), node.output[0])


def convert_leaky_relu(ctx: ConvertContext, node: onnx.NodeProto) -> None:
    alpha = attr_float(node, "alpha", 0.01)
    ctx.emit(O.LeakyRelu(alpha), (ctx.dynamic(node.input[0]),), node.output[0])


def convert_clip(ctx: ConvertContext, node: onnx.NodeProto) -> None:
    """Clip: ``min``/``max`` attributes before opset 11, optional constant inputs after."""
    if ctx.opset < 11:
        lo: float | None = attr_float(node, "min", -np.inf)
        hi: float | None = attr_float(node, "max", np.inf)
    else:
        lo_v = ctx.optional_const(node, 1, "min")
        hi_v = ctx.optional_const(node, 2, "max")
        lo = None if lo_v is None else _scalar(lo_v, "min")
        hi = None if hi_v is None else _scalar(hi_v, "max")
    ctx.emit(O.Clip(_bound(lo), _bound(hi)), (ctx.dynamic(node.input[0]),), node.output[0])


def _scalar(value: np.ndarray, role: str) -> float:
    if np.size(value) != 1:
        raise Unsupported(f"{role} must be a scalar, got shape {list(np.shape(value))}")
    return float(np.asarray(value).reshape(-1)[0])


def _bound(v: float | None) -> float | None:
    """None for an absent or infinite (or float32 lowest/max) bound."""
    if v is None:
        return None
    f = float(v)
    if np.isnan(f):
        raise Unsupported("NaN clip bound")
    if not np.isfinite(f) or abs(f) >= float(np.finfo(np.float32).max):
        return None
    return f


def convert_softmax(ctx: ConvertContext, node: onnx.NodeProto) -> None:
    """Softmax: stripped when it feeds the graph output, else kept.

    Before opset 13 the input is coerced to 2-D at ``axis`` (default 1) and the softmax
    runs over all trailing axes jointly; from 13 on it runs along ``axis`` (default -1).
    """
    x = ctx.dynamic(node.input[0])
    shape = ctx.shape(node.input[0])
    rank = len(shape)
    axis = attr_int(node, "axis", 1 if ctx.opset < 13 else -1)
    axis = axis + rank if axis < 0 else axis
    if not 0 <= axis < rank:
        raise Unsupported(f"axis={axis} out of range for rank {rank}")
    if axis == 0:
        raise Unsupported("axis=0 normalises over the batch axis")
    if node.output[0] in ctx.output_aliases:
        message = "trailing Softmax stripped: verification works on logits"
        logger.warning("%s (node '%s')", message, node.name or node.output[0])
        ctx.note(message)
        ctx.bind(node.output[0], x)
        ctx.stripped_output = node.input[0]
        return
    if ctx.opset >= 13 or axis == rank - 1:
        ctx.emit(O.Softmax(axis), (x,), node.output[0])
        return
    inner = (prod(shape[1:axis]), prod(shape[axis:]))
    flat = ctx.emit(O.Reshape(inner), (x,), hint=f"{node.output[0]}__2d")
    soft = ctx.emit(O.Softmax(-1), (flat,), hint=f"{node.output[0]}__softmax")
    ctx.emit(O.Reshape(shape[1:]), (soft,), node.output[0])


def convert_identity(ctx: ConvertContext, node: onnx.NodeProto) -> None:
    ctx.bind(node.output[0], ctx.dynamic(node.input[0]))


def convert_dropout(ctx: ConvertContext, node: onnx.NodeProto) -> None:
    """Dropout in inference mode is the identity; a used mask or training mode is not."""
    if len(node.output) > 1 and ctx.is_used(node.output[1]):
        raise Unsupported("the mask output is used")
    if ctx.opset >= 12 and len(node.input) > 2 and node.input[2]:
        mode = ctx.const(node.input[2], "training_mode")
        if bool(np.asarray(mode).reshape(-1)[0]):
            raise Unsupported("training_mode=1")
    ctx.bind(node.output[0], ctx.dynamic(node.input[0]))


_FLOAT_TYPES = {TensorProto.FLOAT: "FLOAT", TensorProto.DOUBLE: "DOUBLE"}


def convert_cast(ctx: ConvertContext, node: onnx.NodeProto) -> None:
    """Cast of an input-dependent float tensor to float/double is the identity here."""
    to = attr_int(node, "to", 0)
    if to not in _FLOAT_TYPES:
        name = TensorProto.DataType.Name(to) if to in TensorProto.DataType.values() else str(to)
        raise Unsupported(f"to={name}: only casts to FLOAT/DOUBLE are the identity")
    ctx.bind(node.output[0], ctx.dynamic(node.input[0]))


def convert_shape(ctx: ConvertContext, node: onnx.NodeProto) -> None:
    """Shape of an input-dependent tensor: a constant at batch size 1."""
    shape = ctx.shape(node.input[0])
    rank = len(shape)
    start = attr_int(node, "start", 0)
    stop = attr_int(node, "end", rank)
    ctx.set_const(node.output[0], np.array(shape[slice(start, stop)], dtype=np.int64))
    ctx.note("Shape of an input-dependent tensor evaluated at batch size 1")


def convert_size(ctx: ConvertContext, node: onnx.NodeProto) -> None:
    """Size of an input-dependent tensor: a constant at batch size 1."""
    ctx.set_const(node.output[0], np.array(prod(ctx.shape(node.input[0])), dtype=np.int64))
    ctx.note("Size of an input-dependent tensor evaluated at batch size 1")
