"""Small networks built in code for tests: as IR Networks, chains and ONNX protos."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from verinet.ir import ops as O
from verinet.ir.graph import Network, Node
from verinet.spec.property import Halfspaces, Property, Term
from verinet.types import Box


def random_layers(
    rng: np.random.Generator, sizes: list[int], scale: float = 1.0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Weights (out, in) and biases for consecutive layer sizes."""
    return [
        (rng.normal(0, scale, size=(b, a)), rng.normal(0, scale * 0.5, size=b))
        for a, b in zip(sizes[:-1], sizes[1:], strict=True)
    ]


def relu_network(layers: list[tuple[np.ndarray, np.ndarray]], name: str = "net") -> Network:
    """Linear, Relu, ..., Linear on a flat input of shape (1, n)."""
    n = layers[0][0].shape[1]
    nodes: list[Node] = []
    prev = "x"
    for i, (W, b) in enumerate(layers):
        nodes.append(Node(f"fc{i}", O.Linear(W, b), (prev,), (1, W.shape[0])))
        prev = f"fc{i}"
        if i < len(layers) - 1:
            nodes.append(Node(f"relu{i}", O.Relu(), (prev,), (1, W.shape[0])))
            prev = f"relu{i}"
    return Network("x", (1, n), tuple(nodes), prev, name)


def relu_onnx(layers: list[tuple[np.ndarray, np.ndarray]], opset: int = 13) -> onnx.ModelProto:
    """The same network as an ONNX model (Gemm with transB=1, Relu), float32."""
    n = layers[0][0].shape[1]
    m = layers[-1][0].shape[0]
    nodes, inits = [], []
    prev = "x"
    for i, (W, b) in enumerate(layers):
        inits.append(numpy_helper.from_array(W.astype(np.float32), f"W{i}"))
        inits.append(numpy_helper.from_array(b.astype(np.float32), f"b{i}"))
        out = f"fc{i}" if i < len(layers) - 1 else "y"
        nodes.append(helper.make_node("Gemm", [prev, f"W{i}", f"b{i}"], [out], transB=1))
        prev = out
        if i < len(layers) - 1:
            nodes.append(helper.make_node("Relu", [prev], [f"relu{i}"]))
            prev = f"relu{i}"
    graph = helper.make_graph(
        nodes, "net",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, m])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


Layers = list[tuple[np.ndarray, np.ndarray]]


def float32_layers(layers: Layers) -> Layers:
    """Round weights to float32 so the IR and the ONNX model hold the same numbers."""
    return [(W.astype(np.float32).astype(np.float64), b.astype(np.float32).astype(np.float64))
            for W, b in layers]



def random_property(rng: np.random.Generator, net: Network, n_terms: int) -> Property:
    """``n_terms`` random (box, 1-2 halfspace rows) terms with thresholds near values the
    network reaches in the box, so both verdicts occur."""
    n_in, n_out = net.n_inputs, net.n_outputs
    terms = []
    for _ in range(n_terms):
        c = rng.uniform(-1, 1, n_in)
        r = rng.uniform(0.05, 1.0, n_in)
        box = Box(c - r, c + r)
        k = int(rng.integers(1, 3))
        A = rng.normal(size=(k, n_out))
        y = net.evaluate(rng.uniform(box.lower, box.upper))
        b = A @ y + rng.normal(0, 1.0, size=k)
        terms.append(Term(box, Halfspaces(A, b)))
    return Property(tuple(terms), n_in, n_out)


def draw_instance(draw, n_in: tuple[int, int], width: tuple[int, int], terms: tuple[int, int]
                  ) -> tuple[Network, Layers, Property]:
    """A hypothesis draw of a tiny float32 ReLU network (1-2 hidden layers) and a random
    property with ``terms`` disjuncts; ranges are inclusive ``(min, max)``."""
    from hypothesis import strategies as st

    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    n = draw(st.integers(*n_in))
    hidden = draw(st.lists(st.integers(*width), min_size=1, max_size=2))
    n_out = draw(st.integers(1, 3))
    layers = float32_layers(random_layers(rng, [n, *hidden, n_out]))
    net = relu_network(layers)
    return net, layers, random_property(rng, net, draw(st.integers(*terms)))
