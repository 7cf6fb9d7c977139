"""Walk an ONNX graph once, folding constants and converting every other node to IR nodes.

All nodes are visited even after a failure, so that one
:class:`~verinet.types.UnsupportedModelError` lists every offending node at once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import onnx
from onnx import numpy_helper

from verinet.ir.graph import Network, Node
from verinet.onnx_import import folding
from verinet.onnx_import.context import (
    Blocked,
    ConvertContext,
    Shape,
    Unsupported,
    attr_int,
    node_label,
)
from verinet.onnx_import.model_info import real_inputs
from verinet.onnx_import.registry import CONVERTERS
from verinet.types import ModelError, UnsupportedModelError

logger = logging.getLogger(__name__)

_ALIAS_CASTS = (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE)


@dataclass(frozen=True)
class Conversion:
    """Result of :func:`convert_graph`: the network, notes, and the ONNX tensor whose value
    the network output equals (the graph output, or the logits of a stripped Softmax)."""

    network: Network
    notes: tuple[str, ...]
    output_tensor: str


def convert_graph(model: onnx.ModelProto, opset: int, input_shape: Shape,
                  inferred: dict[str, Shape], name: str) -> Conversion:
    """Convert ``model.graph`` (one input of ``input_shape``, one output) to a Network."""
    graph = model.graph
    input_name = real_inputs(graph)[0].name
    output_name = graph.output[0].name
    ctx = _context(graph, opset, inferred)
    ctx.tensors[input_name] = input_name
    ctx.shapes[input_name] = input_shape
    problems: list[tuple[str, str, str]] = []
    n_folded = 0
    for index, node in enumerate(graph.node):
        n_folded += _convert_node(ctx, node, index, problems, model.opset_import)
    if problems:
        raise UnsupportedModelError(problems, f"ONNX model '{name}'")
    if n_folded:
        ctx.note(f"{n_folded} constant node(s) folded at import time")
    if output_name in ctx.consts or output_name not in ctx.tensors:
        raise ModelError(f"graph output '{output_name}' does not depend on the input")
    out_ir = ctx.tensors[output_name]
    nodes = _prune(ctx.nodes, out_ir)
    network = Network(input_name, input_shape, tuple(nodes), out_ir, name)
    stripped = ctx.stripped_output
    return Conversion(network, tuple(ctx.notes), stripped or output_name)


def _context(graph: onnx.GraphProto, opset: int, inferred: dict[str, Shape]) -> ConvertContext:
    consumers: dict[str, list[onnx.NodeProto]] = {}
    taken = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    for node in graph.node:
        for i in node.input:
            if i:
                consumers.setdefault(i, []).append(node)
        taken.update(o for o in node.output if o)
    ctx = ConvertContext(opset, consumers, output_aliases(graph), inferred, taken)
    for t in graph.initializer:
        ctx.set_const(t.name, numpy_helper.to_array(t))
    for s in graph.sparse_initializer:
        ctx.set_const(s.values.name, numpy_helper.to_array(s))
    return ctx


def output_aliases(graph: onnx.GraphProto) -> frozenset[str]:
    """The graph output and every tensor that reaches it through pure aliases
    (Identity, inference Dropout, Cast to float)."""
    producer = {o: n for n in graph.node for o in n.output if o}
    names = {graph.output[0].name}
    todo = [graph.output[0].name]
    while todo:
        node = producer.get(todo.pop())
        if node is None or not node.input or not _is_alias(node):
            continue
        if node.input[0] not in names:
            names.add(node.input[0])
            todo.append(node.input[0])
    return frozenset(names)


def _is_alias(node: onnx.NodeProto) -> bool:
    if node.op_type in ("Identity", "Dropout"):
        return True
    return node.op_type == "Cast" and attr_int(node, "to", 0) in _ALIAS_CASTS


def _convert_node(ctx: ConvertContext, node: onnx.NodeProto, index: int,
                  problems: list[tuple[str, str, str]],
                  opset_imports: Iterable[onnx.OperatorSetIdProto]) -> int:
    """Fold or convert one node; record a problem on failure. Returns 1 if folded."""
    label = node_label(node, index)
    if node.domain not in ("", "ai.onnx"):
        return _fail(ctx, node, problems, (node.op_type, label, f"domain '{node.domain}'"))
    if folding.is_foldable(node, ctx.consts):
        try:
            values = folding.fold(node, ctx.consts, opset_imports)
        except Exception as e:  # any evaluator failure is reported as a problem of this node
            reason = f"constant folding failed: {_first_line(e)}"
            return _fail(ctx, node, problems, (node.op_type, label, reason))
        for out, value in values.items():
            ctx.set_const(out, value)
        return 0 if node.op_type == "Constant" else 1
    converter = CONVERTERS.get(node.op_type)
    if converter is None:
        return _fail(ctx, node, problems, (node.op_type, label, "unsupported op type"))
    try:
        converter(ctx, node)
    except Unsupported as e:
        return _fail(ctx, node, problems, (node.op_type, label, str(e)))
    except Blocked:
        return _fail(ctx, node, problems, None)
    except (ValueError, IndexError, KeyError, TypeError) as e:  # malformed node attributes
        reason = f"malformed node ({type(e).__name__}: {_first_line(e)})"
        return _fail(ctx, node, problems, (node.op_type, label, reason))
    _cross_check(ctx, node, label)
    return 0


def _fail(ctx: ConvertContext, node: onnx.NodeProto, problems: list[tuple[str, str, str]],
          problem: tuple[str, str, str] | None) -> int:
    if problem is not None:
        problems.append(problem)
    for out in node.output:
        if out and out not in ctx.tensors and out not in ctx.consts:
            ctx.bind_unknown(out)
    return 0


def _cross_check(ctx: ConvertContext, node: onnx.NodeProto, label: str) -> None:
    """Log where the IR shape differs from ONNX shape inference.

    Not an error: shape inference ignores that onnxruntime and the reference drop pooling
    windows starting in the trailing padding with ``ceil_mode``; the value check decides.
    """
    for out in node.output:
        if out in ctx.tensors and out in ctx.inferred and out not in ctx.unknown:
            got = ctx.shapes.get(ctx.tensors[out])
            if got is not None and got != ctx.inferred[out]:
                logger.info("%s '%s': IR shape %s, ONNX shape inference %s for '%s'",
                            node.op_type, label, list(got), list(ctx.inferred[out]), out)


def _prune(nodes: list[Node], output: str) -> list[Node]:
    """Keep only the nodes the output depends on (topological order preserved)."""
    needed = {output}
    for node in reversed(nodes):
        if node.name in needed:
            needed.update(node.inputs)
    return [n for n in nodes if n.name in needed]


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__

