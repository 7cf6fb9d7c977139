"""Models over one unbatched vector: input ``[n]`` (no batch axis), as in the VNN-LIB 2.0
``acasxu_isomorphic`` networks (``MatMul(W, x)``, ``Add``, ``Relu`` on rank-1 tensors).

The IR always has a leading batch axis, so such a model is imported through an
equivalent *batched* copy over row vectors ``[1, n]``: ``MatMul(W, v)`` becomes
``MatMul(v, Transpose(W))``, ``MatMul(v, W)``, elementwise ops with constants of rank
<= 1 and elementwise activations stay as they are (broadcasting ``[1, m]`` against
``[m]`` or a scalar gives the same values), and the rank-1 graph output becomes
``[1, m]``.  Every tensor keeps its name and values (with one more leading axis), so the
original model is what the IR is checked against and what witnesses are replayed on.

Only these ops may touch the vector; any other op on it is refused (ModelError naming
every such node) rather than guessed.
"""

from __future__ import annotations

import onnx
from onnx import helper

from verinet.onnx_import.model_info import real_inputs
from verinet.types import ModelError

#: Elementwise ops whose non-vector operands (constants of rank <= 1) broadcast alike.
ELEMENTWISE = frozenset({"Add", "Sub", "Mul", "Div"})
#: Unary ops applied elementwise (their other inputs, if any, are scalars).
UNARY = frozenset({"Relu", "LeakyRelu", "Sigmoid", "Tanh", "Clip", "Identity", "Neg",
                   "Dropout"})


def is_unbatched(model: onnx.ModelProto) -> bool:
    """Whether the model's one input is a rank-1 vector of static size > 1 (no batch axis).

    A rank-1 input of size 1 or of symbolic size keeps its old reading (a batch of
    scalars)."""
    inputs = real_inputs(model.graph)
    if len(inputs) != 1 or not inputs[0].type.HasField("tensor_type"):
        return False
    tt = inputs[0].type.tensor_type
    if not tt.HasField("shape") or len(tt.shape.dim) != 1:
        return False
    d = tt.shape.dim[0]
    return d.HasField("dim_value") and d.dim_value > 1


def batched_copy(model: onnx.ModelProto) -> onnx.ModelProto:
    """The equivalent model over ``[1, n]`` rows (see the module doc); raises ModelError
    listing every node it cannot carry over."""
    graph = model.graph
    inp = real_inputs(graph)[0]
    ranks = _const_ranks(model)
    vec = {inp.name}
    nodes: list[onnx.NodeProto] = []
    problems: list[str] = []
    for k, node in enumerate(graph.node):
        dyn = [i for i in node.input if i in vec]
        if not dyn:
            nodes.append(node)
            continue
        label = f"{node.op_type} '{node.name or node.output[0]}'"
        new = _carry(node, vec, ranks, k, problems, label)
        nodes.extend(new)
        if new:
            vec.update(o for o in node.output if o)
    out = graph.output[0]
    if out.name not in vec:
        problems.append(f"graph output '{out.name}' is not computed from the vector input")
    if problems:
        raise ModelError(f"unbatched input '{inp.name}' (shape [{_dim(inp)}]): "
                         + "; ".join(problems) + f"; supported on an unbatched vector: "
                         f"MatMul with a 2-D constant, {', '.join(sorted(ELEMENTWISE))} "
                         f"with constants of rank <= 1, {', '.join(sorted(UNARY))}")
    elem_in = inp.type.tensor_type.elem_type
    elem_out = out.type.tensor_type.elem_type
    out_dims = [d.dim_value for d in out.type.tensor_type.shape.dim] if (
        out.type.tensor_type.HasField("shape")) else []
    new_out = helper.make_tensor_value_info(
        out.name, elem_out, [1, *out_dims] if len(out_dims) == 1 and out_dims[0] > 0 else None)
    new_graph = helper.make_graph(
        nodes, graph.name or "unbatched",
        [helper.make_tensor_value_info(inp.name, elem_in, [1, _dim(inp)])],
        [new_out], list(graph.initializer), sparse_initializer=list(graph.sparse_initializer))
    m = helper.make_model(new_graph, opset_imports=list(model.opset_import),
                          ir_version=model.ir_version)
    return m


def _carry(node: onnx.NodeProto, vec: set[str], ranks: dict[str, int], k: int,
           problems: list[str], label: str) -> list[onnx.NodeProto]:
    """The node(s) computing ``node``'s outputs over rows; [] (with a problem) if none."""
    ins = list(node.input)
    if node.op_type == "MatMul":
        a, b = ins[0], ins[1]
        if a in vec and b in vec:
            problems.append(f"{label} multiplies two input-dependent tensors")
            return []
        const = b if a in vec else a
        if ranks.get(const) != 2:
            problems.append(f"{label} needs a 2-D constant operand")
            return []
        if a in vec:  # v @ W: [1, n] @ [n, m]
            return [node]
        t = f"{const}__transposed_{k}"  # W @ v = v @ W^T
        return [helper.make_node("Transpose", [const], [t], perm=[1, 0], name=t),
                helper.make_node("MatMul", [b, t], list(node.output), name=node.name)]
    if node.op_type in ELEMENTWISE:
        bad = [i for i in ins if i not in vec and ranks.get(i, 99) > 1]
        if bad:
            problems.append(f"{label} broadcasts against '{bad[0]}' of rank > 1")
            return []
        return [node]
    if node.op_type in UNARY:
        if any(i in vec for i in ins[1:]):
            problems.append(f"{label} takes an input-dependent parameter")
            return []
        return [node]
    problems.append(f"{label} is not supported on an unbatched vector")
    return []


def _const_ranks(model: onnx.ModelProto) -> dict[str, int]:
    """Ranks of the constants: initializers, Constant nodes, and what shape inference
    says of the rest."""
    ranks = {t.name: len(t.dims) for t in model.graph.initializer}
    ranks.update({s.values.name: len(s.dims) for s in model.graph.sparse_initializer})
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except (onnx.shape_inference.InferenceError, ValueError, RuntimeError):
        inferred = model
    for vi in inferred.graph.value_info:
        tt = vi.type.tensor_type
        if tt.HasField("shape"):
            ranks.setdefault(vi.name, len(tt.shape.dim))
    for node in model.graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    ranks[node.output[0]] = len(a.t.dims)
                elif a.name in ("value_float", "value_int"):
                    ranks[node.output[0]] = 0
    return ranks


def _dim(inp: onnx.ValueInfoProto) -> int:
    return int(inp.type.tensor_type.shape.dim[0].dim_value)
