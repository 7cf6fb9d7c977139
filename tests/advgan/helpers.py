"""Tiny targets for the AdvGAN tests: a flat ReLU MLP (IR and ONNX) and an image-shaped
one (a Reshape from (1, 1, H, W), then the MLP), with labelled points in [0, 1]."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from tests.nets import float32_layers, random_layers, relu_network, relu_onnx
from verinet.ir import ops as O
from verinet.ir.graph import Network, Node

SIZES = (6, 32, 3)


def layers(sizes: tuple[int, ...] = SIZES, seed: int = 6) -> list[tuple[np.ndarray, np.ndarray]]:
    return float32_layers(random_layers(np.random.default_rng(seed), list(sizes)))


def flat_net(sizes: tuple[int, ...] = SIZES, seed: int = 6) -> Network:
    return relu_network(layers(sizes, seed))


def image_net(h: int = 6, w: int = 6, classes: int = 3, seed: int = 2) -> Network:
    """``(1, 1, h, w) -> Reshape -> MLP h*w-16-classes``."""
    mlp = relu_network(layers((h * w, 16, classes), seed))
    first = Node("flat", O.Reshape((h * w,)), ("img",), (1, h * w))
    nodes = (first,) + tuple(Node(n.name, n.op, tuple("flat" if i == "x" else i for i in n.inputs),
                                  n.shape) for n in mlp.nodes)
    return Network("img", (1, 1, h, w), nodes, mlp.output_name, "image")


def write_onnx(path: Path, sizes: tuple[int, ...] = SIZES, seed: int = 6) -> Path:
    """The flat MLP of :func:`flat_net` as an ONNX file."""
    onnx.save(relu_onnx(layers(sizes, seed)), str(path))
    return path


def points(net: Network, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uniform points of [0, 1]^d and the IR's labels for them."""
    x = np.random.default_rng(seed).uniform(0, 1, (n, net.n_inputs))
    return x, np.argmax(net.evaluate(x), axis=1)
