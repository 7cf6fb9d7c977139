"""The affine rules: ``lin`` is the op's linear part, ``alin`` its absolute value and
``lin_t`` its transpose (checked on every affine node of random graphs); the registry
names what the graph engine lacks and refuses it, listing every node at once."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.graphs import random_graph
from verinet.bounds.graph import GraphModel
from verinet.bounds.graph.registry import RULES, UNSUPPORTED
from verinet.ir import ops as O
from verinet.ir.graph import Network, Node
from verinet.ir.torch import TorchNetwork
from verinet.types import UnsupportedModelError


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_affine_rules_are_linear_maps_and_transposes(seed: int) -> None:
    net = random_graph(seed, depth=4)
    gm = GraphModel.of(net)
    rules = gm.rules_on(torch.float64, "cpu")
    mod = TorchNetwork(net)
    rng = np.random.default_rng(seed)
    for name in gm.order[1:]:
        rule = rules[name]
        if not rule.linear:  # type: ignore[attr-defined]
            continue
        ins = [i for i in gm.inputs[name] if i in gm.shape]
        xs = [torch.tensor(rng.normal(size=(2,) + gm.shape[i])) for i in ins]
        y = rule.lin(xs)  # type: ignore[attr-defined]
        A = torch.tensor(rng.normal(size=y.shape))
        back = rule.lin_t(A)  # type: ignore[attr-defined]
        lhs = (A * y).sum()
        rhs = sum((b * x).sum() for b, x in zip(back, xs, strict=True))
        assert torch.allclose(lhs, rhs, rtol=1e-10, atol=1e-10), name
        assert torch.all(rule.alin([x.abs() for x in xs]) >= y.abs() - 1e-12)  # type: ignore[attr-defined]
        if name not in gm.folded:  # the IR node's linear part
            out = mod.run(dict(zip(ins, xs, strict=True)), [name], homogeneous=True)[name]
            assert torch.allclose(out.expand_as(y), y, atol=1e-12), name


def test_ops_the_graph_engine_lacks() -> None:
    """Every IR op class has a rule, except these (the list is part of the contract)."""
    ops = {c for c in vars(O).values()
           if isinstance(c, type) and issubclass(c, O.Op) and c is not O.Op}
    lacking = ops - set(RULES)
    assert lacking == {O.Const, O.Softmax}  # Const nodes never depend on the input
    assert set(UNSUPPORTED) == {O.Softmax}


def test_unsupported_nodes_are_listed_together() -> None:
    W = np.ones((3, 3))
    nodes = (
        Node("a", O.Linear(W), ("x",), (1, 3)),
        Node("s", O.Softmax(-1), ("a",), (1, 3)),
        Node("m", O.Binary("mul"), ("a", "s"), (1, 3)),
        Node("d", O.Binary("div"), ("a", "m"), (1, 3)),
    )
    gm = GraphModel.of(Network("x", (1, 3), nodes, "d"))
    assert [(op, name) for op, name, _ in gm.unsupported] == [
        ("Softmax", "s"), ("Binary", "m"), ("Binary", "d")]
    with pytest.raises(UnsupportedModelError,
                       match=r"graph bound engine: 3 unsupported node\(s\): Softmax 's' .*"
                             r"Binary 'm' \(mul of two input-dependent tensors.*"
                             r"Binary 'd' \(div of two input-dependent tensors"):
        gm.check()


def test_negative_leaky_slope_is_refused() -> None:
    nodes = (Node("l", O.LeakyRelu(-0.5), ("x",), (1, 2)),)
    gm = GraphModel.of(Network("x", (1, 2), nodes, "l"))
    with pytest.raises(UnsupportedModelError, match=r"LeakyRelu 'l' \(negative slope -0.5"):
        gm.check()


def test_normalisation_is_folded_into_the_first_dense_layer() -> None:
    rng = np.random.default_rng(0)
    nodes = (Node("r", O.Reshape((4,)), ("x",), (1, 4)),
             Node("fc", O.Linear(rng.normal(size=(2, 4)), rng.normal(size=2)), ("r",), (1, 2)))
    net = Network("x", (1, 1, 2, 2), nodes, "fc").with_normalization(np.array(0.5),
                                                                     np.array(0.25))
    gm = GraphModel.of(net)
    assert gm.order == ("x__raw", "r", "fc")
    x = rng.uniform(size=(3, 4))
    rules = gm.rules_on(torch.float64, "cpu")
    got = rules["fc"].lin([torch.tensor(x)]) + rules["fc"].offset  # type: ignore[attr-defined]
    assert np.allclose(got.numpy(), net.evaluate(x), atol=1e-12)
