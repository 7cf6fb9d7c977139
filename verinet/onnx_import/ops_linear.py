"""Converters for MatMul and Gemm (dense layers).

Weights are converted to float64 once; ``Linear`` acts on the last axis, which is exactly
ONNX MatMul with a constant right operand.
"""

from __future__ import annotations

import numpy as np
import onnx

from verinet.ir import ops as O
from verinet.onnx_import.context import ConvertContext, Unsupported, attr_float, attr_int


def convert_matmul(ctx: ConvertContext, node: onnx.NodeProto) -> None:
    """``x @ B`` -> Linear(B.T); ``A @ x`` (x of rank >= 3) -> Transpose, Linear(A), Transpose."""
    a, b = node.input[0], node.input[1]
    if ctx.is_dynamic(a) and ctx.is_dynamic(b):
        ctx.require_known(a, b)
        raise Unsupported("MatMul of two input-dependent tensors")
    if ctx.is_dynamic(a):
        _matmul_right_const(ctx, node, ctx.consts[b])
    else:
        _matmul_left_const(ctx, node, ctx.consts[a])


def _strip_leading_ones(w: np.ndarray, role: str, max_rank: int) -> np.ndarray:
    w = np.asarray(w, dtype=np.float64)
    if w.ndim > max_rank:
        raise Unsupported(f"constant {role} of rank {w.ndim} broadcasts over the batch axis")
    while w.ndim > 2 and w.shape[0] == 1:
        w = w[0]
    if w.ndim > 2:
        raise Unsupported(f"batched MatMul with a constant of shape {list(w.shape)}")
    return w


def _matmul_right_const(ctx: ConvertContext, node: onnx.NodeProto, b: np.ndarray) -> None:
    x = ctx.dynamic(node.input[0])
    w = _strip_leading_ones(b, "B", len(ctx.shape(node.input[0])))
    out = node.output[0]
    if w.ndim == 1:  # x @ v contracts the last axis away
        lin = ctx.emit(O.Linear(w.reshape(1, -1)), (x,), hint=f"{out}__linear")
        ctx.emit(O.Reshape(ctx.shapes[lin][1:-1]), (lin,), out)  # type: ignore[index]
        return
    ctx.emit(O.Linear(w.T), (x,), out)


def _matmul_left_const(ctx: ConvertContext, node: onnx.NodeProto, a: np.ndarray) -> None:
    x = ctx.dynamic(node.input[1])
    rank = len(ctx.shape(node.input[1]))
    if rank < 3:
        raise Unsupported("constant-times-input MatMul contracts the batch axis")
    w = _strip_leading_ones(a, "A", rank)
    if w.ndim != 2:
        raise Unsupported("constant-times-input MatMul with a 1-D constant")
    swap = tuple(range(rank - 2)) + (rank - 1, rank - 2)
    out = node.output[0]
    xt = ctx.emit(O.Transpose(swap), (x,), hint=f"{out}__xT")
    lin = ctx.emit(O.Linear(w), (xt,), hint=f"{out}__linear")
    ctx.emit(O.Transpose(swap), (lin,), out)


def convert_gemm(ctx: ConvertContext, node: onnx.NodeProto) -> None:
    """``alpha * A' @ B' + beta * C`` with an input-dependent A and constant B."""
    a, b = node.input[0], node.input[1]
    trans_a = attr_int(node, "transA", 0)
    trans_b = attr_int(node, "transB", 0)
    alpha = attr_float(node, "alpha", 1.0)
    beta = attr_float(node, "beta", 1.0)
    if not ctx.is_dynamic(a):
        raise Unsupported("constant A with an input-dependent B")
    if trans_a:
        raise Unsupported("transA=1 with an input-dependent A transposes the batch axis")
    bw = np.asarray(ctx.const(b, "B"), dtype=np.float64)
    if bw.ndim != 2:
        raise Unsupported(f"B must be 2-D, got shape {list(bw.shape)}")
    weight = alpha * (bw if trans_b else bw.T)
    n_out = weight.shape[0]
    c_name = node.input[2] if len(node.input) > 2 else ""
    out = node.output[0]
    x = ctx.dynamic(a)
    if not c_name or beta == 0.0:
        ctx.emit(O.Linear(weight), (x,), out)
        return
    if ctx.is_const(c_name):
        c = beta * np.asarray(ctx.consts[c_name], dtype=np.float64)
        if c.size == n_out and c.ndim <= 2 and (c.ndim < 2 or c.shape[0] == 1):
            ctx.emit(O.Linear(weight, c.reshape(n_out)), (x,), out)
            return
        if c.size == 1:
            ctx.emit(O.Linear(weight, np.full(n_out, c.reshape(-1)[0])), (x,), out)
            return
        lin = ctx.emit(O.Linear(weight), (x,), hint=f"{out}__linear")
        ctx.emit(O.Binary("add"), (lin, ctx.const_node(c, f"{out}__c")), out)
        return
    lin = ctx.emit(O.Linear(weight), (x,), hint=f"{out}__linear")
    c_ir = ctx.dynamic(c_name, "C")
    if beta != 1.0:
        c_ir = ctx.emit(O.Binary("mul"), (c_ir, ctx.const_node(np.array(beta), f"{out}__beta")),
                        hint=f"{out}__betaC")
    ctx.emit(O.Binary("add"), (lin, c_ir), out)
