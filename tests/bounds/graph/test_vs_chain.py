"""On fully connected nets the graph engine's CROWN bounds equal the chain engine's to
1e-9 relative (ReLU, Sigmoid, Tanh; with a normalisation prefix, as imported models have).

The chain engine also intersects intermediate bounds with forward linear bounds on inputs
of up to ``FORWARD_MAX_INPUTS`` dimensions (an extra the portfolio keeps for low-dimensional
models, which stay on the chain); the comparison switches it off."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.nets import random_layers
from verinet.bounds import crown
from verinet.bounds.crown import crown_bounds
from verinet.bounds.graph import GraphModel, graph_crown
from verinet.ir import ops as O
from verinet.ir.chain import to_chain
from verinet.ir.graph import Network, Node


def _fc(rng: np.random.Generator, sizes: list[int], kind: str, normalise: bool) -> Network:
    act = {"relu": O.Relu, "sigmoid": O.Sigmoid, "tanh": O.Tanh}[kind]
    nodes: list[Node] = []
    prev = "x"
    for i, (W, b) in enumerate(random_layers(rng, sizes)):
        nodes.append(Node(f"fc{i}", O.Linear(W, b), (prev,), (1, W.shape[0])))
        prev = f"fc{i}"
        if i < len(sizes) - 2:
            nodes.append(Node(f"a{i}", act(), (prev,), (1, W.shape[0])))
            prev = f"a{i}"
    net = Network("x", (1, sizes[0]), tuple(nodes), prev)
    if normalise:
        net = net.with_normalization(rng.uniform(0, 0.5, sizes[0]), rng.uniform(0.2, 1, sizes[0]))
    return net


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), kind=st.sampled_from(["relu", "sigmoid", "tanh"]),
       normalise=st.booleans(), depth=st.integers(1, 4), eps=st.sampled_from([0.01, 0.1, 1.0]))
def test_graph_crown_equals_chain_crown(seed: int, kind: str, normalise: bool, depth: int,
                                        eps: float) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(crown, "FORWARD_MAX_INPUTS", 0)
        _compare(seed, kind, normalise, depth, eps)


def _compare(seed: int, kind: str, normalise: bool, depth: int, eps: float) -> None:
    rng = np.random.default_rng(seed)
    sizes = [int(rng.integers(2, 12))] + [int(rng.integers(2, 20)) for _ in range(depth)] + [3]
    net = _fc(rng, sizes, kind, normalise)
    x = rng.uniform(0, 1, size=(3, sizes[0]))
    lo, hi = x - eps, x + eps
    C = rng.normal(size=(4, 3))
    gm, chain = GraphModel.of(net), to_chain(net)
    for i in range(len(x)):  # one box at a time: on a batch the graph engine refines the
        # union of the boxes' unstable units (tighter, not equal)
        a = graph_crown(gm, lo[i], hi[i], C)
        b = crown_bounds(chain, lo[i], hi[i], C)
        scale = 1.0 + np.maximum(np.abs(b.lower), np.abs(b.upper))
        assert np.all(np.abs(a.lower - b.lower) <= 1e-9 * scale)
        assert np.all(np.abs(a.upper - b.upper) <= 1e-9 * scale)


def test_fully_connected_shared_models(vnncomp_dir) -> None:
    """The same on the shared VNN-COMP fully connected models (ACAS Xu, MNIST 256xK, ERAN
    9x200), one property box each."""
    import csv

    from verinet.onnx_import import load_onnx
    from verinet.spec.vnnlib import read_vnnlib

    seen: set[str] = set()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(crown, "FORWARD_MAX_INPUTS", 0)
        for r in csv.DictReader((vnncomp_dir / "manifest.csv").open()):
            if r["onnx"] in seen or len(seen) >= 8:
                continue
            seen.add(r["onnx"])
            net = load_onnx(vnncomp_dir / r["onnx"], check=False).network
            prop = read_vnnlib(vnncomp_dir / r["vnnlib"], net.n_inputs, net.n_outputs)
            box, A = prop.terms[0].box, prop.terms[0].unsafe.A
            a = graph_crown(GraphModel.of(net), box.lower, box.upper, A)
            b = crown_bounds(to_chain(net), box.lower, box.upper, A)
            scale = 1.0 + np.maximum(np.abs(b.lower), np.abs(b.upper))
            assert np.all(np.abs(a.lower - b.lower) <= 1e-9 * scale), r["onnx"]
            assert np.all(np.abs(a.upper - b.upper) <= 1e-9 * scale), r["onnx"]
