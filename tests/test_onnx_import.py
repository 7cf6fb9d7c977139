"""ONNX import: every supported op (and attribute variant) against onnx's reference
evaluator and onnxruntime, error reporting, and the shared benchmark models."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from verinet.ir import ops as O
from verinet.ir.chain import to_chain
from verinet.onnx_import import CONVERTERS, ImportedModel, import_model, load_onnx, onnx_evaluator
from verinet.onnx_import.check import reference_evaluator
from verinet.types import Box, InputError, ModelError, UnsupportedModelError

F32 = TensorProto.FLOAT
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


# ----------------------------------------------------------------------------- builders


def rand(*shape: int, seed: int = 0, lo: float = -1.0, hi: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed + 7 * len(shape)).uniform(lo, hi, shape).astype(np.float32)


def node(op: str, ins: list[str], outs: list[str], **attrs: object) -> onnx.NodeProto:
    return helper.make_node(op, ins, outs, name=f"{op}_{outs[0]}", **attrs)


def make_model(nodes: list[onnx.NodeProto], in_shape: tuple[int, ...],
               inits: dict[str, np.ndarray] | None = None, opset: int = 13,
               batch: str | int = "N", out_shape: list[object] | None = None) -> onnx.ModelProto:
    """Input 'x' of shape [batch, *in_shape], output 'y'; IR version minimal for ``opset``
    (IR 3 lists initializers among the graph inputs, like old exporters)."""
    opsets = [helper.make_opsetid("", opset)]
    ir_version = helper.find_min_ir_version_for(opsets)
    initializers = [numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()]
    inputs = [helper.make_tensor_value_info("x", F32, [batch, *in_shape])]
    if ir_version < 4:
        inputs += [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
                   for t in initializers]
    outputs = [helper.make_tensor_value_info("y", F32, out_shape)]
    graph = helper.make_graph(nodes, "test", inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=opsets, ir_version=ir_version)
    return onnx.shape_inference.infer_shapes(model)  # declares the output shape


def unary(op: str, shape: tuple[int, ...] = (3, 4), opset: int = 13, **attrs: object
          ) -> Callable[[], onnx.ModelProto]:
    return lambda: make_model([node(op, ["x"], ["y"], **attrs)], shape, opset=opset)


def i64(*v: int) -> np.ndarray:
    return np.array(v, dtype=np.int64)


def conv(shape: tuple[int, ...], w: tuple[int, ...], bias: bool = True, opset: int = 13,
         **attrs: object) -> Callable[[], onnx.ModelProto]:
    inits = {"W": rand(*w), **({"B": rand(w[0], seed=1)} if bias else {})}
    ins = ["x", "W", "B"] if bias else ["x", "W"]
    return lambda: make_model([node("Conv", ins, ["y"], **attrs)], shape, inits, opset)


def gemm(c: np.ndarray | None = None, w: tuple[int, int] = (5, 4), **attrs: object
         ) -> Callable[[], onnx.ModelProto]:
    inits = {"B": rand(*w), **({"C": c} if c is not None else {})}
    ins = ["x", "B", "C"] if c is not None else ["x", "B"]
    n_in = w[1] if attrs.get("transB") else w[0]
    return lambda: make_model([node("Gemm", ins, ["y"], **attrs)], (n_in,), inits, 11)


def bn_params(c: int, prefix: str = "") -> dict[str, np.ndarray]:
    return {f"{prefix}s": rand(c, seed=2), f"{prefix}b": rand(c, seed=3),
            f"{prefix}m": rand(c, seed=4), f"{prefix}v": rand(c, seed=5, lo=0.5, hi=2.0)}


def bn(inp: str, out: str, opset: int = 13, **attrs: object) -> onnx.NodeProto:
    return node("BatchNormalization", [inp, "s", "b", "m", "v"], [out], **attrs)


def two_layer(opset: int) -> onnx.ModelProto:
    """A small net using the version-dependent forms of Reshape, Unsqueeze, Squeeze, Clip,
    Dropout and Softmax at ``opset``."""
    inits: dict[str, np.ndarray] = {"shape": i64(0, -1), "W": rand(6, 12), "C": rand(6, seed=1),
                                    "W2": rand(6, 4, seed=2), "b2": rand(4, seed=3)}
    nodes = [node("Reshape", ["x", "shape"], ["flat"]),
             node("Gemm", ["flat", "W", "C"], ["h"], transB=1, alpha=0.5)]
    if opset < 13:
        nodes += [node("Unsqueeze", ["h"], ["hu"], axes=[2]),
                  node("Squeeze", ["hu"], ["hs"], axes=[2])]
    else:
        inits["ax"] = i64(2)
        nodes += [node("Unsqueeze", ["h", "ax"], ["hu"]), node("Squeeze", ["hu", "ax"], ["hs"])]
    if opset < 11:
        nodes.append(node("Clip", ["hs"], ["hc"], min=-0.5, max=0.75))
    else:
        inits.update(lo=np.array(-0.5, np.float32), hi=np.array(0.75, np.float32))
        nodes.append(node("Clip", ["hs", "lo", "hi"], ["hc"]))
    nodes += [node("Dropout", ["hc"], ["hd"]), node("Relu", ["hd"], ["r"]),
              node("MatMul", ["r", "W2"], ["mm"]), node("Add", ["mm", "b2"], ["logits"]),
              node("Softmax", ["logits"], ["sm"]), node("Tanh", ["sm"], ["y"])]
    return make_model(nodes, (3, 4), inits, opset)


def pytorch_flatten() -> onnx.ModelProto:
    """``x.view(x.size(0), -1)`` as PyTorch exports it: Shape, Gather, Unsqueeze, Concat."""
    nodes = [node("Shape", ["x"], ["s"]),
             node("Constant", [], ["zero"], value=numpy_helper.from_array(i64(0).reshape(()))),
             node("Gather", ["s", "zero"], ["n"], axis=0),
             node("Unsqueeze", ["n", "ax"], ["n1"]),
             node("Concat", ["n1", "minus1"], ["target"], axis=0),
             node("Reshape", ["x", "target"], ["flat"]),
             node("Gemm", ["flat", "W"], ["y"], transB=1)]
    return make_model(nodes, (2, 3, 3), {"ax": i64(0), "minus1": i64(-1), "W": rand(4, 18)})


def conv_bn(shared: bool) -> onnx.ModelProto:
    """Conv -> BN (folded); with ``shared`` the Conv output also feeds a Relu (not folded)."""
    nodes = [node("Conv", ["x", "W", "B"], ["c"], pads=[1, 1, 1, 1]), bn("c", "n")]
    if shared:
        nodes += [node("Relu", ["c"], ["r"]), node("Add", ["n", "r"], ["y"])]
    else:
        nodes.append(node("Relu", ["n"], ["y"]))
    inits = {"W": rand(3, 2, 3, 3), "B": rand(3, seed=1), **bn_params(3)}
    return make_model(nodes, (2, 5, 5), inits)


def chain(*specs: tuple[str, dict[str, object]], shape: tuple[int, ...] = (2, 6, 6),
          opset: int = 13) -> Callable[[], onnx.ModelProto]:
    """A linear chain of single-input ops x -> t1 -> ... -> y."""
    def build() -> onnx.ModelProto:
        names = ["x"] + [f"t{i}" for i in range(1, len(specs))] + ["y"]
        nodes = [node(op, [a], [b], **attrs)
                 for (op, attrs), a, b in zip(specs, names[:-1], names[1:], strict=True)]
        return make_model(nodes, shape, opset=opset)
    return build


def binary(op: str, const_first: bool = False, c_shape: tuple[int, ...] = (4,)
           ) -> Callable[[], onnx.ModelProto]:
    ins = ["c", "x"] if const_first else ["x", "c"]
    c = rand(*c_shape, seed=9, lo=0.5, hi=2.0)
    return lambda: make_model([node(op, ins, ["y"])], (3, 4), {"c": c})


CASES: dict[str, Callable[[], onnx.ModelProto]] = {
    # elementwise arithmetic
    "Add-const": binary("Add"),
    "Sub-const-first": binary("Sub", const_first=True),
    "Mul-const-broadcast": binary("Mul", c_shape=(3, 1)),
    "Div-const": binary("Div"),
    "Div-const-first": binary("Div", const_first=True),
    "Add-two-dynamic": lambda: make_model(
        [node("Relu", ["x"], ["r"]), node("Add", ["x", "r"], ["y"])], (3, 4)),
    "Mul-two-dynamic": lambda: make_model([node("Mul", ["x", "x"], ["y"])], (3, 4)),
    "Constant-node-operand": lambda: make_model(
        [node("Constant", [], ["c"], value=numpy_helper.from_array(rand(4, seed=3))),
         node("Mul", ["x", "c"], ["y"])], (4,)),
    "folded-const-subgraph": lambda: make_model(
        [node("Mul", ["a", "a"], ["a2"]), node("Exp", ["a2"], ["e"]),
         node("Sub", ["x", "e"], ["y"])], (4,), {"a": rand(4)}),
    # dense layers
    "MatMul-2d": lambda: make_model([node("MatMul", ["x", "W"], ["y"])], (4,), {"W": rand(4, 3)}),
    "MatMul-vector-B": lambda: make_model([node("MatMul", ["x", "w"], ["y"])], (3, 4),
                                          {"w": rand(4)}),
    "MatMul-rank3": lambda: make_model([node("MatMul", ["x", "W"], ["y"])], (3, 4),
                                       {"W": rand(1, 4, 5)}),
    "MatMul-const-left": lambda: make_model([node("MatMul", ["A", "x"], ["y"])], (2, 3, 4),
                                            {"A": rand(5, 3)}),
    "Gemm-plain": gemm(rand(4, seed=1)),
    "Gemm-transB": gemm(rand(5, seed=1), transB=1),
    "Gemm-alpha-beta": gemm(rand(4, seed=1), alpha=0.5, beta=-2.0),
    "Gemm-no-C": gemm(None, transB=1, alpha=3.0),
    "Gemm-C-scalar": gemm(np.array(0.7, np.float32), beta=2.0),
    "Gemm-C-row": gemm(rand(1, 4, seed=1)),
    "Gemm-beta-zero": gemm(rand(4, seed=1), beta=0.0),
    "Gemm-C-dynamic": lambda: make_model(
        [node("Relu", ["x"], ["r"]), node("Gemm", ["x", "B", "r"], ["y"], alpha=0.5, beta=2.0)],
        (4,), {"B": rand(4, 4)}, 11),
    # activations
    "Relu": unary("Relu"),
    "LeakyRelu": unary("LeakyRelu", alpha=0.2),
    "LeakyRelu-default-alpha": unary("LeakyRelu"),
    "Sigmoid": unary("Sigmoid"),
    "Tanh": unary("Tanh"),
    "Clip-opset6-attrs": unary("Clip", opset=8, min=-0.5, max=0.25),
    "Clip-opset6-min-only": unary("Clip", opset=10, min=-0.3),
    "Clip-opset11-inputs": lambda: make_model(
        [node("Clip", ["x", "lo", "hi"], ["y"])], (3, 4),
        {"lo": np.array(-0.5, np.float32), "hi": np.array(0.5, np.float32)}, 11),
    "Clip-opset13-unbounded": unary("Clip"),
    "Clip-opset6-defaults": unary("Clip", opset=8),
    "Clip-opset13-max-only": lambda: make_model(
        [node("Clip", ["x", "", "hi"], ["y"])], (3, 4), {"hi": np.array(0.1, np.float32)}, 13),
    "Softmax-inner-opset13": chain(("Softmax", {"axis": 1}), ("Relu", {}), shape=(3, 4)),
    "Softmax-inner-opset11-coerced": chain(("Softmax", {"axis": 1}), ("Relu", {}), shape=(3, 4),
                                           opset=11),
    "Softmax-inner-opset11-axis2": chain(("Softmax", {"axis": 2}), ("Relu", {}), shape=(3, 4, 2),
                                         opset=11),
    # layout
    "Flatten-axis1": unary("Flatten", (2, 3, 4), axis=1),
    "Flatten-axis2-unit-channel": unary("Flatten", (1, 3, 4), axis=2),
    "Flatten-negative-axis": unary("Flatten", (2, 3, 4), opset=11, axis=-3),
    "Reshape-0-minus1": lambda: make_model([node("Reshape", ["x", "s"], ["y"])], (2, 3, 4),
                                           {"s": i64(0, -1)}),
    "Reshape-0-inner": lambda: make_model([node("Reshape", ["x", "s"], ["y"])], (2, 3, 4),
                                          {"s": i64(0, 0, 2, -1)}),
    "Reshape-literal-batch": lambda: make_model([node("Reshape", ["x", "s"], ["y"])], (2, 3),
                                                {"s": i64(1, 6)}, batch=1),
    "Reshape-allowzero-opset14": lambda: make_model(
        [node("Reshape", ["x", "s"], ["y"], allowzero=1)], (2, 3), {"s": i64(1, 3, 2)}, 14, 1),
    "pytorch-flatten-Shape-Gather": pytorch_flatten,
    "Squeeze-opset11-attr": unary("Squeeze", (3, 1, 4), opset=11, axes=[2]),
    "Squeeze-opset13-input": lambda: make_model([node("Squeeze", ["x", "a"], ["y"])], (3, 1, 4),
                                                {"a": i64(-2)}),
    "Unsqueeze-opset11-attr": unary("Unsqueeze", (3, 4), opset=11, axes=[1, -1]),
    "Unsqueeze-opset13-input": lambda: make_model([node("Unsqueeze", ["x", "a"], ["y"])], (3, 4),
                                                  {"a": i64(2)}),
    "Transpose": unary("Transpose", (2, 3, 4), perm=[0, 2, 3, 1]),
    "Concat-const": lambda: make_model([node("Concat", ["x", "c"], ["y"], axis=1)], (3,),
                                       {"c": rand(1, 2)}),
    "Concat-dynamic-negative-axis": lambda: make_model(
        [node("Relu", ["x"], ["r"]), node("Concat", ["x", "r", "c"], ["y"], axis=-1)], (2, 3),
        {"c": rand(1, 2, 1)}),
    # convolution
    "Conv-basic": conv((2, 6, 6), (3, 2, 3, 3)),
    "Conv-pads-strides": conv((2, 7, 6), (3, 2, 3, 3), pads=[1, 0, 2, 1], strides=[2, 1]),
    "Conv-dilations": conv((2, 7, 7), (3, 2, 3, 3), dilations=[2, 1]),
    "Conv-groups": conv((4, 5, 5), (6, 2, 3, 3), group=2, pads=[1, 1, 1, 1]),
    "Conv-depthwise-no-bias": conv((3, 5, 5), (3, 1, 2, 2), bias=False, group=3),
    "Conv-auto-SAME_UPPER": conv((1, 7, 7), (2, 1, 4, 4), auto_pad="SAME_UPPER", strides=[2, 2]),
    "Conv-auto-SAME_LOWER": conv((1, 7, 6), (2, 1, 4, 3), auto_pad="SAME_LOWER", strides=[2, 1]),
    "Conv-auto-VALID": conv((1, 7, 7), (2, 1, 3, 3), auto_pad="VALID", strides=[2, 2]),
    "Conv-opset8": conv((2, 5, 5), (2, 2, 3, 3), opset=8, pads=[1, 1, 1, 1]),
    # batch normalisation
    "BN-folded-into-Conv": lambda: conv_bn(shared=False),
    "BN-Conv-output-shared": lambda: conv_bn(shared=True),
    "BN-after-Relu": lambda: make_model([node("Relu", ["x"], ["r"]), bn("r", "y", epsilon=1e-3)],
                                        (3, 4, 4), bn_params(3)),
    "BN-2d-input": lambda: make_model([bn("x", "y")], (3,), bn_params(3)),
    "BN-opset8-spatial": lambda: make_model([bn("x", "y", spatial=1)], (3, 2, 2), bn_params(3),
                                            opset=8),
    "BN-opset8-spatial0": lambda: make_model(
        [bn("x", "y", spatial=0)], (3, 2, 2),
        {"s": rand(3, 2, 2, seed=2), "b": rand(3, 2, 2, seed=3), "m": rand(3, 2, 2, seed=4),
         "v": rand(3, 2, 2, seed=5, lo=0.5, hi=2.0)}, opset=8),
    "BN-opset15": lambda: make_model([bn("x", "y", training_mode=0)], (3, 2, 2), bn_params(3),
                                     opset=15),
    # pooling
    "MaxPool-basic": unary("MaxPool", (2, 6, 6), kernel_shape=[2, 2], strides=[2, 2]),
    "MaxPool-pads": unary("MaxPool", (2, 7, 6), kernel_shape=[3, 3], strides=[2, 2],
                          pads=[1, 1, 1, 0]),
    "MaxPool-ceil": unary("MaxPool", (1, 5, 6), kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1),
    "MaxPool-ceil-pads": unary("MaxPool", (1, 6, 6), kernel_shape=[3, 3], strides=[2, 2],
                               pads=[1, 1, 1, 1], ceil_mode=1),
    "MaxPool-dilations": unary("MaxPool", (1, 7, 7), kernel_shape=[2, 2], dilations=[2, 2]),
    "MaxPool-SAME_UPPER": unary("MaxPool", (1, 7, 7), kernel_shape=[3, 3], strides=[2, 2],
                                auto_pad="SAME_UPPER"),
    "MaxPool-opset8": unary("MaxPool", (1, 6, 6), opset=8, kernel_shape=[2, 2], strides=[2, 2]),
    "AveragePool-basic": unary("AveragePool", (2, 6, 6), kernel_shape=[2, 2], strides=[2, 2]),
    "AveragePool-pads-exclude": unary("AveragePool", (1, 5, 5), kernel_shape=[3, 3],
                                      strides=[2, 2], pads=[1, 1, 1, 1]),
    "AveragePool-pads-include": unary("AveragePool", (1, 5, 5), kernel_shape=[3, 3],
                                      strides=[2, 2], pads=[1, 0, 1, 2], count_include_pad=1),
    "AveragePool-ceil": unary("AveragePool", (1, 5, 6), kernel_shape=[2, 2], strides=[2, 2],
                              ceil_mode=1),
    "AveragePool-ceil-pads-include": unary("AveragePool", (1, 6, 6), kernel_shape=[3, 3],
                                           strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1,
                                           count_include_pad=1),
    "AveragePool-SAME_UPPER": unary("AveragePool", (1, 6, 6), kernel_shape=[3, 3],
                                    strides=[2, 2], auto_pad="SAME_UPPER"),
    "GlobalAveragePool": unary("GlobalAveragePool", (3, 4, 5)),
    # pass-through, padding
    "Identity": chain(("Identity", {}), ("Relu", {}), shape=(4,)),
    "Dropout-opset8": chain(("Dropout", {"ratio": 0.3}), ("Relu", {}), shape=(4,), opset=8),
    "Dropout-opset13": chain(("Dropout", {}), ("Relu", {}), shape=(4,)),
    "Cast-to-float": chain(("Cast", {"to": F32}), ("Relu", {}), shape=(4,)),
    "Pad-opset11": lambda: make_model([node("Pad", ["x", "p"], ["y"])], (2, 3, 3),
                                      {"p": i64(0, 0, 1, 2, 0, 0, 2, 1)}, 11),
    "Pad-opset8-attrs": unary("Pad", (2, 3, 3), opset=8, pads=[0, 0, 1, 0, 0, 0, 0, 2]),
    "Pad-opset18-axes": lambda: make_model(
        [node("Pad", ["x", "p", "", "a"], ["y"])], (2, 3, 3),
        {"p": i64(1, 0, 0, 2), "a": i64(2, 3)}, 18),
}
CASES.update({f"versioned-net-opset{v}": (lambda v=v: two_layer(v)) for v in range(8, 22)})


def compare(imported: ImportedModel, n: int = 12, seed: int = 1) -> None:
    """The IR equals the reference evaluator and onnxruntime on random points."""
    net = imported.network
    x = np.random.default_rng(seed).uniform(-2.0, 2.0, (n, net.n_inputs))
    y_ir = net.evaluate(x)
    for run in (reference_evaluator(imported.onnx_model), onnx_evaluator(imported.onnx_model)):
        y = run(x)
        assert y.shape == y_ir.shape
        np.testing.assert_allclose(y_ir, y, rtol=0, atol=1e-4 * (1 + np.abs(y).max()))


@pytest.mark.parametrize("build", list(CASES.values()), ids=list(CASES))
def test_op_matches_onnx(build: Callable[[], onnx.ModelProto]) -> None:
    imported = import_model(build(), n_check_points=6)
    assert imported.max_check_error <= 1e-4 * (1 + 10)
    compare(imported)
    dependent = {imported.network.input_name}
    for n in imported.network.nodes:  # only input-dependent nodes and the Consts they use
        if isinstance(n.op, O.Const):
            continue
        assert any(i in dependent for i in n.inputs), n.name
        dependent.add(n.name)


def ops_of(imported: ImportedModel) -> list[type]:
    return [type(n.op) for n in imported.network.nodes]


def test_division_by_constant_stays_a_division() -> None:
    imported = import_model(CASES["Div-const"]())
    assert [n.op.kind for n in imported.network.nodes if isinstance(n.op, O.Binary)] == ["div"]


def test_constant_identity_dropout_cast_disappear() -> None:
    for case in ("Identity", "Dropout-opset8", "Dropout-opset13", "Cast-to-float"):
        assert ops_of(import_model(CASES[case]())) == [O.Relu]
    assert ops_of(import_model(CASES["Constant-node-operand"]())) == [O.Const, O.Binary]


def test_constant_subgraphs_are_folded() -> None:
    imported = import_model(CASES["folded-const-subgraph"]())
    assert ops_of(imported) == [O.Const, O.Binary]
    assert any("folded" in n for n in imported.notes)
    flat = import_model(CASES["pytorch-flatten-Shape-Gather"]())
    assert ops_of(flat) == [O.Reshape, O.Linear]
    x = np.random.default_rng(0).normal(size=(5, 18))  # batch 5 although Shape saw batch 1
    one_by_one = np.vstack([flat.network.evaluate(r) for r in x])
    np.testing.assert_allclose(flat.network.evaluate(x), one_by_one)


def test_gemm_folds_alpha_beta_into_linear() -> None:
    imported = import_model(CASES["Gemm-alpha-beta"]())
    (lin,) = [n.op for n in imported.network.nodes]
    assert isinstance(lin, O.Linear) and lin.bias is not None


def test_batchnorm_folded_into_conv_or_kept() -> None:
    folded = import_model(CASES["BN-folded-into-Conv"]())
    assert ops_of(folded) == [O.Conv, O.Relu]
    assert any("folded into Conv" in n for n in folded.notes)
    shared = import_model(CASES["BN-Conv-output-shared"]())
    assert O.ChannelAffine in ops_of(shared)
    assert ops_of(import_model(CASES["BN-after-Relu"]())) == [O.Relu, O.ChannelAffine]


def test_trailing_softmax_is_stripped(caplog: pytest.LogCaptureFixture) -> None:
    nodes = [node("Gemm", ["x", "W", "b"], ["logits"], transB=1),
             node("Softmax", ["logits"], ["p"], axis=1), node("Identity", ["p"], ["y"])]
    model = make_model(nodes, (4,), {"W": rand(3, 4), "b": rand(3, seed=1)})
    with caplog.at_level("WARNING"):
        imported = import_model(model)
    assert "trailing Softmax stripped: verification works on logits" in imported.notes
    assert "trailing Softmax stripped" in caplog.text
    assert ops_of(imported) == [O.Linear]
    assert imported.onnx_model.graph.output[0].name == "logits"
    x = np.random.default_rng(0).normal(size=(3, 4))
    logits = x @ rand(3, 4).T.astype(np.float64) + rand(3, seed=1)
    np.testing.assert_allclose(imported.network.evaluate(x), logits, atol=1e-5)
    compare(imported)


def test_symbolic_and_fixed_batch() -> None:
    sym = import_model(unary("Relu", (3,))())
    assert any("treated as 1" in n for n in sym.notes)
    fixed = import_model(make_model([node("Relu", ["x"], ["y"])], (3,), batch=1))
    assert fixed.network.input_shape == (1, 3) and not fixed.notes
    np.testing.assert_allclose(onnx_evaluator(fixed.onnx_model)(-np.eye(3)), 0.0)


def test_check_uses_the_input_box() -> None:
    model = CASES["Gemm-transB"]()
    box = Box(np.full(4, 2.0), np.full(4, 3.0))
    imported = import_model(model, input_box=box, n_check_points=4, seed=3)
    assert 0.0 <= imported.max_check_error < 1e-4
    unchecked = import_model(model, check=False)
    assert np.isnan(unchecked.max_check_error)
    with pytest.raises(InputError, match="box has 3 values"):
        import_model(model, input_box=Box(np.zeros(3), np.ones(3)))


def test_wrong_conversion_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    def relu_as_sigmoid(ctx: object, n: onnx.NodeProto) -> None:
        ctx.emit(O.Sigmoid(), (ctx.dynamic(n.input[0]),), n.output[0])  # type: ignore[attr-defined]

    monkeypatch.setitem(CONVERTERS, "Relu", relu_as_sigmoid)
    message = r"IR and onnxruntime disagree on \d+ of 17 check points: max error"
    with pytest.raises(ModelError, match=message):
        import_model(unary("Relu")())


# ----------------------------------------------------------------------------- unsupported


def test_all_unsupported_nodes_reported_at_once() -> None:
    nodes = [node("Erf", ["x"], ["e"]),  # no converter
             node("Relu", ["x"], ["r"]),
             node("MatMul", ["x", "r"], ["mm"]),  # input-dependent times input-dependent
             node("Add", ["e", "mm"], ["s"]),
             node("MaxPool", ["s"], ["y"], kernel_shape=[2, 2], storage_order=1)]
    with pytest.raises(UnsupportedModelError,
                       match="ONNX model 'test': 3 unsupported node") as info:
        import_model(make_model(nodes, (1, 4, 4)))
    names = [name for _, name, _ in info.value.unsupported]
    assert names == ["Erf_e", "MatMul_mm", "MaxPool_y"]
    assert "storage_order=1" in str(info.value) and "two input-dependent" in str(info.value)
    assert "\n" not in str(info.value)


UNSUPPORTED: dict[str, tuple[Callable[[], onnx.ModelProto], str]] = {
    "Conv-1d": (conv((2, 8), (3, 2, 3)), "kernel rank 1"),
    "Conv-3d": (conv((1, 4, 4, 4), (2, 1, 2, 2, 2)), "kernel rank 3"),
    "Conv-dynamic-weight": (lambda: make_model([node("Conv", ["x", "x"], ["y"])], (1, 2, 2)),
                            "must be a constant"),
    "Gemm-transA": (gemm(None, w=(1, 3), transA=1), "transA=1"),
    "MaxPool-indices-used": (lambda: make_model(
        [node("MaxPool", ["x"], ["p", "i"], kernel_shape=[2, 2]),
         node("Cast", ["i"], ["f"], to=F32), node("Add", ["p", "f"], ["y"])], (1, 4, 4)),
        "Indices output"),
    "MaxPool-3d": (unary("MaxPool", (1, 4, 4, 4), kernel_shape=[2, 2, 2]), "kernel rank 3"),
    "AveragePool-dilations": (unary("AveragePool", (1, 6, 6), opset=19, kernel_shape=[2, 2],
                                    dilations=[2, 2]), "dilations"),
    "Transpose-batch": (unary("Transpose", (3, 4), perm=[1, 0, 2]), "perm[0]=1"),
    "Concat-axis0": (lambda: make_model([node("Concat", ["x", "x"], ["y"], axis=0)], (3,)),
                     "batch axis"),
    "Flatten-axis0": (unary("Flatten", (3, 2), axis=0), "axis=0"),
    "Flatten-merges-batch": (unary("Flatten", (3, 2), axis=2), "merge or drop the batch axis"),
    "Reshape-merges-batch": (lambda: make_model([node("Reshape", ["x", "s"], ["y"])], (2, 3),
                                                {"s": i64(2, 3)}, batch=1), "batch axis"),
    "Squeeze-batch-axis": (unary("Squeeze", (3,), opset=11, axes=[0]), "drops the batch axis"),
    "Squeeze-no-axes": (lambda: make_model([node("Squeeze", ["x"], ["y"])], (1, 3), opset=11,
                                           batch=1), "no axes"),
    "Unsqueeze-axis0": (lambda: make_model([node("Unsqueeze", ["x", "a"], ["y"])], (3,),
                                           {"a": i64(0)}), "moves the batch axis"),
    "Softmax-axis0": (unary("Softmax", (3,), axis=0), "batch axis"),
    "Clip-dynamic-min": (lambda: make_model([node("Clip", ["x", "x"], ["y"])], (3,)),
                         "min 'x' must be a constant"),
    "Pad-reflect": (lambda: make_model([node("Pad", ["x", "p"], ["y"], mode="reflect")], (1, 3, 3),
                                       {"p": i64(0, 0, 1, 1, 0, 0, 1, 1)}), "mode=reflect"),
    "Pad-channels": (lambda: make_model([node("Pad", ["x", "p"], ["y"])], (1, 3, 3),
                                        {"p": i64(0, 1, 0, 0, 0, 0, 0, 0)}), "spatial axes"),
    "BN-training": (lambda: make_model([bn("x", "y", training_mode=1)], (3, 2, 2), bn_params(3),
                                       opset=15, out_shape=["N", 3, 2, 2]), "training_mode=1"),
    "Cast-to-int": (chain(("Cast", {"to": TensorProto.INT64}), ("Cast", {"to": F32}), shape=(3,)),
                    "to=INT64"),
    "unknown-op": (unary("Erf"), "unsupported op type"),
}


@pytest.mark.parametrize("case", list(UNSUPPORTED.values()), ids=list(UNSUPPORTED))
def test_unsupported_names_node_and_reason(case: tuple[Callable[[], onnx.ModelProto], str]) -> None:
    build, reason = case
    model = build()
    with pytest.raises(UnsupportedModelError, match=re.escape(reason)) as info:
        import_model(model)
    assert info.value.unsupported[0][1] == model.graph.node[0].name
    assert len(info.value.unsupported) == 1


# ----------------------------------------------------------------------------- files, errors


def test_missing_file_is_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_onnx(tmp_path / "absent.onnx")


def test_corrupt_file_is_one_line_model_error(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.onnx"
    path.write_bytes(bytes(range(256)) * 3)
    with pytest.raises(ModelError, match=re.escape(f"cannot read ONNX model {path}: ")) as info:
        load_onnx(path)
    assert not isinstance(info.value, InputError) and "\n" not in str(info.value)


def test_round_trip_through_a_file(tmp_path: Path) -> None:
    path = tmp_path / "net.onnx"
    onnx.save(CASES["Conv-groups"](), path)
    imported = load_onnx(path)
    assert imported.network.name == "net" and imported.network.n_inputs == 100


def _two_inputs() -> onnx.ModelProto:
    model = unary("Relu")()
    model.graph.input.append(helper.make_tensor_value_info("z", F32, [1, 3]))
    return model


def _two_outputs() -> onnx.ModelProto:
    model = make_model([node("Relu", ["x"], ["y"]), node("Sigmoid", ["x"], ["z"])], (3,))
    model.graph.output.append(helper.make_tensor_value_info("z", F32, ["N", 3]))
    return model


@pytest.mark.parametrize("build,message", [
    (_two_inputs, "2 graph inputs"),
    (_two_outputs, "2 outputs"),
    (lambda: make_model([node("Relu", ["x"], ["y"])], (3,), batch=2), "batch dimension fixed to 2"),
    (lambda: make_model([node("Relu", ["q"], ["y"])], (3,)), "invalid ONNX model"),
    (lambda: make_model([node("Relu", ["x"], ["r"]), node("Identity", ["c"], ["y"])], (3,),
                        {"c": rand(1, 3)}), "does not depend on the input"),
], ids=["two-inputs", "two-outputs", "batch-2", "checker", "constant-output"])
def test_model_errors(build: Callable[[], onnx.ModelProto], message: str) -> None:
    with pytest.raises(ModelError, match=message) as info:
        import_model(build())
    assert "\n" not in str(info.value)


# ----------------------------------------------------------------------------- shared models


def _shared_models() -> list[Path]:
    files = sorted((SHARED / "vnncomp" / "onnx").glob("*.onnx"))
    return files + sorted((SHARED / "deeppac" / "models").glob("*.onnx"))


def _expected(name: str) -> tuple[int, int, int]:
    """(n_inputs, n_outputs, ReLU layers) from the shared READMEs."""
    if name.startswith("ACASXU"):
        return 5, 5, 6
    if name.startswith("mnist-net_256x"):
        return 784, 10, int(name.split("x")[-1])
    if name == "mnist_relu_9_200":
        return 784, 10, 9  # 8 hidden layers and a ReLU on the logits
    fnn_layers = {"1": 3, "2": 3, "3": 3, "4": 6, "5": 9}
    return 784, 10, fnn_layers[name.rsplit("_", 1)[-1]]


@pytest.mark.skipif(not _shared_models(), reason="shared benchmark models not present")
@pytest.mark.parametrize("path", _shared_models(), ids=lambda p: p.stem)
def test_shared_model_loads_and_chains(path: Path) -> None:
    n_in, n_out, n_relu = _expected(path.stem)
    imported = load_onnx(path, n_check_points=8)
    net = imported.network
    assert (net.n_inputs, net.n_outputs) == (n_in, n_out)
    assert imported.max_check_error < 1e-3
    chain = to_chain(net, check_points=4)
    assert chain.is_relu and len(chain.activations) == n_relu
    assert (chain.n_inputs, chain.n_outputs) == (n_in, n_out)
