"""A small ONNX graph writer for the self-test's generated networks.

Nodes are added one by one with ``onnx.helper`` (no tracing): every weight is stored as a
float32 initializer, so the ONNX file, verinet's IR (float64 copies of the same float32
numbers) and any other reader hold exactly the same network.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13


@dataclass
class OnnxGraph:
    """Builds one graph with input ``x`` of ``input_shape`` (batch axis 1 included)."""

    input_shape: tuple[int, ...]
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    inits: list[onnx.TensorProto] = field(default_factory=list)

    @property
    def input(self) -> str:
        return "x"

    def _name(self, stem: str) -> str:
        return f"{stem}{len(self.nodes)}"

    def const(self, value: np.ndarray, stem: str = "c", dtype: type = np.float32) -> str:
        name = f"{stem}{len(self.inits)}"
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, inputs: list[str], stem: str, **attrs: object) -> str:
        out = self._name(stem)
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def gemm(self, x: str, W: np.ndarray, b: np.ndarray) -> str:
        """``x W^T + b`` on a (1, k) tensor."""
        return self.op("Gemm", [x, self.const(W, "W"), self.const(b, "b")], "fc", transB=1)

    def conv(self, x: str, W: np.ndarray, b: np.ndarray, *, pad: int = 0,
             stride: int = 1) -> str:
        k = W.shape[-1]
        return self.op("Conv", [x, self.const(W, "K"), self.const(b, "kb")], "conv",
                       kernel_shape=[k, k], pads=[pad] * 4, strides=[stride, stride])

    def relu(self, x: str) -> str:
        return self.op("Relu", [x], "relu")

    def sigmoid(self, x: str) -> str:
        return self.op("Sigmoid", [x], "sigmoid")

    def add(self, a: str, b: str) -> str:
        return self.op("Add", [a, b], "add")

    def flatten(self, x: str) -> str:
        return self.op("Flatten", [x], "flat", axis=1)

    def concat(self, parts: list[str]) -> str:
        return self.op("Concat", parts, "cat", axis=1)

    def maxpool(self, x: str, k: int, stride: int) -> str:
        return self.op("MaxPool", [x], "pool", kernel_shape=[k, k], strides=[stride, stride])

    def model(self, output: str, n_outputs: int, name: str) -> onnx.ModelProto:
        """The finished model, output renamed ``y`` (1, n_outputs), checked by onnx."""
        last = self.nodes[-1]
        if last.output[0] != output:
            raise ValueError("the output must be the last node added")
        last.output[0] = "y"
        graph = helper.make_graph(
            self.nodes, name,
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(self.input_shape))],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n_outputs])],
            self.inits,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="verinet.selftest")
        model.ir_version = 8
        onnx.checker.check_model(model, full_check=True)
        return model
