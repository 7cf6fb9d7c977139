"""Model-level helpers: the input shape, ONNX shape inference at batch size 1, and the
logits variant of a model whose trailing Softmax was stripped."""

from __future__ import annotations

import logging

import onnx
from onnx import helper

from verinet.onnx_import.context import Shape
from verinet.types import ModelError

logger = logging.getLogger(__name__)

_FLOAT_INPUTS = (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16)


def real_inputs(graph: onnx.GraphProto) -> list[onnx.ValueInfoProto]:
    """Graph inputs that are not initializers (old exports list initializers as inputs)."""
    init = {t.name for t in graph.initializer} | {t.values.name for t in graph.sparse_initializer}
    return [i for i in graph.input if i.name not in init]


def input_shape(model: onnx.ModelProto) -> tuple[Shape, list[str]]:
    """The input shape with the batch axis set to 1, and notes.

    The batch dimension may be 1, symbolic, 0 or unset; every other dimension must be a
    static positive size.
    """
    inputs = real_inputs(model.graph)
    if len(inputs) != 1:
        names = ", ".join(repr(i.name) for i in inputs)
        raise ModelError(
            f"model has {len(inputs)} graph inputs ({names}); exactly one is supported"
        )
    inp = inputs[0]
    if not inp.type.HasField("tensor_type"):
        raise ModelError(f"input '{inp.name}' is not a tensor")
    tt = inp.type.tensor_type
    if tt.elem_type not in _FLOAT_INPUTS:
        kind = onnx.TensorProto.DataType.Name(tt.elem_type)
        raise ModelError(f"input '{inp.name}' has element type {kind}; a float type is required")
    if not tt.HasField("shape") or not tt.shape.dim:
        raise ModelError(f"input '{inp.name}' has no batch axis (unknown or scalar shape)")
    batch, *rest = tt.shape.dim
    notes = []
    if batch.HasField("dim_value") and batch.dim_value > 1:
        raise ModelError(f"input '{inp.name}' has a batch dimension fixed to {batch.dim_value}; "
                         "it must be 1 or symbolic")
    if not (batch.HasField("dim_value") and batch.dim_value == 1):
        label = batch.dim_param or "unknown"
        notes.append(f"batch dimension '{label}' of input '{inp.name}' treated as 1")
    dims = []
    for k, d in enumerate(rest, start=1):
        if not d.HasField("dim_value") or d.dim_value <= 0:
            raise ModelError(f"input '{inp.name}' has no static size on axis {k}")
        dims.append(int(d.dim_value))
    return (1, *dims), notes


def infer_shapes(model: onnx.ModelProto) -> tuple[dict[str, Shape], list[str]]:
    """Static shapes (batch size 1) of every tensor ONNX shape inference can determine."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    del m.graph.value_info[:]
    for out in m.graph.output:
        out.type.tensor_type.ClearField("shape")
    dim0 = real_inputs(m.graph)[0].type.tensor_type.shape.dim[0]
    dim0.Clear()
    dim0.dim_value = 1
    try:
        m = onnx.shape_inference.infer_shapes(m, check_type=False, strict_mode=False,
                                              data_prop=True)
    except (onnx.shape_inference.InferenceError, ValueError, RuntimeError) as e:
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        logger.info("ONNX shape inference failed: %s", text)
        return {}, [f"ONNX shape inference failed ({text}); using the IR dry run only"]
    shapes: dict[str, Shape] = {}
    for vi in list(m.graph.value_info) + list(m.graph.output):
        tt = vi.type.tensor_type
        if tt.HasField("shape") and all(d.HasField("dim_value") for d in tt.shape.dim):
            shapes[vi.name] = tuple(int(d.dim_value) for d in tt.shape.dim)
    return shapes, []


def logits_model(model: onnx.ModelProto, tensor: str) -> onnx.ModelProto:
    """A copy of ``model`` whose single output is ``tensor`` (nodes it does not need are
    dropped): the ONNX counterpart of a network whose trailing Softmax was stripped."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    graph = m.graph
    elem = graph.output[0].type.tensor_type.elem_type
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(tensor, elem, None))
    needed = {tensor}
    keep = []
    for node in reversed(graph.node):
        if any(o in needed for o in node.output):
            keep.append(node)
            needed.update(i for i in node.input if i)
    del graph.node[:]
    graph.node.extend(reversed(keep))
    try:  # fill in the output shape (the checker and some runtimes want one)
        return onnx.shape_inference.infer_shapes(m)
    except (onnx.shape_inference.InferenceError, ValueError, RuntimeError):
        return m
