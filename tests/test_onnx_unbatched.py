"""ONNX models over one unbatched vector ``[n]`` (``MatMul(W, x)``): imported through
their batched copy, checked and replayed against the original model."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from verinet.onnx_import import import_model, onnx_evaluator
from verinet.onnx_import.check import reference_evaluator
from verinet.types import ModelError

F32 = TensorProto.FLOAT


def vector_mlp(extra: list[onnx.NodeProto] | None = None, out: str = "y") -> onnx.ModelProto:
    """x [4] -> W0 @ x + b0 -> Relu -> W1 @ h + b1 -> y [3] (the acasxu_isomorphic form)."""
    rng = np.random.default_rng(0)
    inits = {"W0": rng.normal(size=(6, 4)), "B0": rng.normal(size=6),
             "W1": rng.normal(size=(3, 6)), "B1": rng.normal(size=3)}
    nodes = [helper.make_node("MatMul", ["W0", "x"], ["m0"]),
             helper.make_node("Add", ["m0", "B0"], ["h0"]),
             helper.make_node("Relu", ["h0"], ["r0"]),
             helper.make_node("MatMul", ["W1", "r0"], ["m1"]),
             helper.make_node("Add", ["m1", "B1"], ["y"])] + (extra or [])
    graph = helper.make_graph(
        nodes, "vec", [helper.make_tensor_value_info("x", F32, [4])],
        [helper.make_tensor_value_info(out, F32, None)],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)], ir_version=7)
    return onnx.shape_inference.infer_shapes(model)


def test_an_unbatched_vector_model_imports_and_matches_the_original() -> None:
    model = vector_mlp()
    imported = import_model(model)
    net = imported.network
    assert (net.input_shape, net.output_shape) == ((1, 4), (1, 3))
    x = np.random.default_rng(1).uniform(-1, 1, size=(5, 4))
    want = np.stack([reference_evaluator(model)(xi[None])[0] for xi in x])
    assert np.allclose(net.evaluate(x), want, atol=1e-5)
    assert np.allclose(onnx_evaluator(imported.onnx_model)(x), want, atol=1e-5)
    assert imported.onnx_model is model  # witnesses replay on the original file
    assert any("unbatched input 'x'" in n for n in imported.notes)


def test_an_op_the_vector_rewrite_cannot_carry_is_named() -> None:
    model = vector_mlp([helper.make_node("Softmax", ["y"], ["z"])], out="z")
    with pytest.raises(ModelError, match=r"unbatched input 'x' \(shape \[4\]\): Softmax .*"
                                         "not supported on an unbatched vector"):
        import_model(model)
