"""Constant folding: nodes whose inputs are all constants are evaluated at import time.

``Constant`` nodes are read directly; every other foldable node is run through
``onnx.reference.ReferenceEvaluator`` as a one-node model with the graph's opset imports,
so folding follows the ONNX semantics of the model's opset exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

#: Ops that must never be folded (their value is not a function of their inputs).
NONDETERMINISTIC = frozenset(
    {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
     "Multinomial", "Bernoulli"}
)


def is_foldable(node: onnx.NodeProto, consts: Mapping[str, np.ndarray]) -> bool:
    """True when every (non-empty) input of ``node`` is a constant and folding is valid."""
    if node.op_type in NONDETERMINISTIC or node.domain not in ("", "ai.onnx"):
        return False
    inputs = [i for i in node.input if i]
    if not inputs:
        return node.op_type == "Constant"
    return all(i in consts for i in inputs)


def fold(node: onnx.NodeProto, consts: Mapping[str, np.ndarray],
         opset_imports: Iterable[onnx.OperatorSetIdProto]) -> dict[str, np.ndarray]:
    """Evaluate ``node`` on constant inputs; returns its (non-empty) outputs by name."""
    if node.op_type == "Constant" and len(node.attribute) == 1:
        a = node.attribute[0]
        if a.name == "value":
            return {node.output[0]: numpy_helper.to_array(a.t)}
    inputs = list(dict.fromkeys(i for i in node.input if i))
    outputs = [o for o in node.output if o]
    graph = helper.make_graph(
        [node],
        "fold",
        [_value_info(i, consts[i]) for i in inputs],
        [helper.make_value_info(o, onnx.TypeProto()) for o in outputs],
    )
    model = helper.make_model(graph, opset_imports=list(opset_imports))
    results = ReferenceEvaluator(model).run(None, {i: consts[i] for i in inputs})
    return {o: np.asarray(r) for o, r in zip(outputs, results, strict=True)}


def _value_info(name: str, value: np.ndarray) -> onnx.ValueInfoProto:
    elem = helper.np_dtype_to_tensor_dtype(np.asarray(value).dtype)
    return helper.make_tensor_value_info(name, elem, list(np.shape(value)))
