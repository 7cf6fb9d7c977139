"""The network IR: construction checks, normalisation, and the chain form."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verinet.ir import ops as O
from verinet.ir.chain import to_chain
from verinet.ir.graph import Network, Node
from verinet.types import InputError, ModelError, UnsupportedModelError


def weights(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape)


def mlp(acts: list[O.Op], widths: list[int], seed: int = 0) -> Network:
    """Linear, act, Linear, act, ..., Linear on flat inputs of size widths[0]."""
    nodes, prev = [], "x"
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        w, b = weights(n_out, n_in, seed=seed + i), weights(n_out, seed=seed + 100 + i)
        nodes.append(Node(f"lin{i}", O.Linear(w, b), (prev,), (1, n_out)))
        prev = f"lin{i}"
        if i < len(acts):
            nodes.append(Node(f"act{i}", acts[i], (prev,), (1, n_out)))
            prev = f"act{i}"
    return Network("x", (1, widths[0]), tuple(nodes), prev)


def assert_chain_equals_network(net: Network, n: int = 32, seed: int = 1) -> None:
    chain = to_chain(net)
    x = np.random.default_rng(seed).uniform(-3, 3, (n, net.n_inputs))
    np.testing.assert_allclose(chain.forward(x), net.evaluate(x), rtol=1e-9, atol=1e-9)


# ----------------------------------------------------------------------------- construction


def test_undefined_input_is_rejected() -> None:
    with pytest.raises(ModelError, match="uses 'z' before it is defined"):
        Network("x", (1, 3), (Node("y", O.Relu(), ("z",), (1, 3)),), "y")


def test_recorded_shape_mismatch_is_rejected() -> None:
    lin = O.Linear(weights(4, 3))
    with pytest.raises(ModelError, match=r"produces shape \(1, 4\), graph records \(1, 5\)"):
        Network("x", (1, 3), (Node("y", lin, ("x",), (1, 5)),), "y")


def test_incompatible_input_shape_is_rejected() -> None:
    lin = O.Linear(weights(4, 2))
    with pytest.raises(ModelError, match="cannot be evaluated on inputs of shape"):
        Network("x", (1, 3), (Node("y", lin, ("x",), (1, 4)),), "y")


@pytest.mark.parametrize("build,message", [
    (lambda: Node("y", O.Binary("add"), ("x",), (1, 3)), "takes 2 input"),
    (lambda: Network("x", (2, 3), (), "x"), "leading batch axis 1"),
    (lambda: Network("x", (1, 3), (Node("x", O.Relu(), ("x",), (1, 3)),), "x"), "defined twice"),
    (lambda: Network("x", (1, 3), (Node("y", O.Relu(), ("x",), (1, 3)),), "z"), "not produced"),
], ids=["arity", "batch-axis", "duplicate", "missing-output"])
def test_construction_errors(build: object, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        build()  # type: ignore[operator]


def test_evaluate_checks_input_size() -> None:
    net = mlp([O.Relu()], [3, 4, 2])
    assert net.evaluate(np.zeros(3)).shape == (2,)
    with pytest.raises(InputError, match="expects 3"):
        net.evaluate(np.zeros((2, 4)))


# ----------------------------------------------------------------------------- normalisation


def conv_net() -> Network:
    conv = O.Conv(weights(3, 2, 2, 2), weights(3, seed=1), pads=(1, 0, 0, 1))
    nodes = (Node("c", conv, ("x",), (1, 3, 4, 4)), Node("r", O.Relu(), ("c",), (1, 3, 4, 4)),
             Node("f", O.Reshape((48,)), ("r",), (1, 48)),
             Node("y", O.Linear(weights(5, 48, seed=2)), ("f",), (1, 5)))
    return Network("x", (1, 2, 4, 4), nodes, "y")


def test_with_normalization_matches_normalising_first() -> None:
    net = conv_net()
    mean, std = np.array([0.1, -0.2]), np.array([0.3, 0.5])
    normed = net.with_normalization(mean, std)
    assert normed.input_shape == net.input_shape and normed.n_inputs == 32
    x = np.random.default_rng(0).uniform(0, 1, (6, 32))
    per_pixel = (x.reshape(6, 2, 4, 4) - mean[:, None, None]) / std[:, None, None]
    np.testing.assert_allclose(normed.evaluate(x), net.evaluate(per_pixel.reshape(6, -1)),
                               rtol=1e-12, atol=1e-12)
    scalar = net.with_normalization(np.array(0.5), np.array(2.0))
    np.testing.assert_allclose(scalar.evaluate(x), net.evaluate((x - 0.5) / 2.0), atol=1e-12)
    assert_chain_equals_network(normed)


_NOT_FINITE = "normalisation needs finite mean and positive finite std"


@pytest.mark.parametrize("mean,std,match", [
    (0.0, 0.0, _NOT_FINITE), (np.nan, 1.0, _NOT_FINITE), (0.0, -1.0, _NOT_FINITE),
    ([0, 0, 0], 1.0, r"mean/std do not broadcast to input shape \(1, 2, 4, 4\)")])
def test_with_normalization_rejects_bad_parameters(mean: object, std: object,
                                                   match: str) -> None:
    with pytest.raises(InputError, match=match):
        conv_net().with_normalization(np.array(mean), np.array(std))


# ----------------------------------------------------------------------------- chain form


def test_chain_of_conv_net() -> None:
    net = conv_net()
    chain = to_chain(net)
    assert [a.kind for a in chain.activations] == ["relu"]
    assert chain.affines[0].weight.shape == (48, 32)
    assert_chain_equals_network(net)


def test_leaky_relu_and_clip_are_rewritten_as_relus() -> None:
    acts = [O.LeakyRelu(0.1), O.Clip(-0.5, 0.7), O.Clip(lo=0.2), O.Clip(hi=0.3)]
    net = mlp(acts, [3, 4, 5, 6, 7, 2])
    chain = to_chain(net)
    assert chain.is_relu
    # LeakyRelu and a two-sided Clip double the width; one-sided clips keep it
    assert [a.size for a in chain.activations] == [8, 10, 6, 7]
    assert_chain_equals_network(net)


def test_unbounded_clip_is_folded_away() -> None:
    net = mlp([O.Relu(), O.Clip()], [3, 4, 4, 2])
    assert len(to_chain(net).activations) == 1
    assert_chain_equals_network(net)


def test_skip_connection_is_unsupported() -> None:
    nodes = (Node("a", O.Linear(weights(4, 3)), ("x",), (1, 4)),
             Node("r", O.Relu(), ("a",), (1, 4)),
             Node("b", O.Linear(weights(4, 3, seed=1)), ("x",), (1, 4)),
             Node("y", O.Binary("add"), ("r", "b"), (1, 4)))
    net = Network("x", (1, 3), nodes, "y")
    with pytest.raises(UnsupportedModelError, match="skip connection"):
        to_chain(net)


@pytest.mark.parametrize("op,kind", [(O.Binary("mul"), "mul"), (O.Binary("div"), "div")])
def test_product_of_input_dependent_tensors_is_unsupported(op: O.Op, kind: str) -> None:
    nodes = (Node("r", O.Relu(), ("x",), (1, 3)), Node("y", op, ("r", "r"), (1, 3)))
    with pytest.raises(UnsupportedModelError, match=f"{kind} of input-dependent"):
        to_chain(Network("x", (1, 3), nodes, "y"))


def test_maxpool_is_unsupported_in_chain_form() -> None:
    nodes = (Node("p", O.MaxPool((2, 2), (2, 2)), ("x",), (1, 1, 2, 2)),)
    with pytest.raises(UnsupportedModelError, match="not piecewise-affine"):
        to_chain(Network("x", (1, 1, 4, 4), nodes, "p"))


def test_affine_ops_between_activations() -> None:
    """Transpose, Concat with a constant, average pooling and division by a constant all
    fold into the affine layers."""
    nodes = (
        Node("t", O.Transpose((0, 1, 3, 2)), ("x",), (1, 2, 4, 4)),
        Node("k", O.Const(np.full((1, 1, 4, 4), 0.5)), (), (1, 1, 4, 4)),
        Node("c", O.Concat(1), ("t", "k"), (1, 3, 4, 4)),
        Node("p", O.AveragePool((2, 2), (2, 2), pads=(1, 1, 0, 0)), ("c",), (1, 3, 2, 2)),
        Node("s", O.Const(np.array(4.0)), (), ()),
        Node("d", O.Binary("div"), ("p", "s"), (1, 3, 2, 2)),
        Node("r", O.Relu(), ("d",), (1, 3, 2, 2)),
        Node("g", O.GlobalAveragePool(), ("r",), (1, 3, 1, 1)),
        Node("y", O.ChannelAffine(np.array([1.0, -2.0, 3.0]), np.array([0.5, 0.0, -1.0])),
             ("g",), (1, 3, 1, 1)),
    )
    net = Network("x", (1, 2, 4, 4), nodes, "y")
    assert len(to_chain(net).activations) == 1
    assert_chain_equals_network(net)


ACTS = {"relu": O.Relu(), "leaky": O.LeakyRelu(0.2), "clip": O.Clip(-1.0, 1.0),
        "clip_lo": O.Clip(lo=-0.3), "sigmoid": O.Sigmoid(), "tanh": O.Tanh()}


@settings(max_examples=30, deadline=None)
@given(
    widths=st.lists(st.integers(1, 5), min_size=2, max_size=5),
    act_names=st.lists(st.sampled_from(sorted(ACTS)), min_size=4, max_size=4),
    seed=st.integers(0, 1000),
)
def test_chain_equals_network_on_random_points(widths: list[int], act_names: list[str],
                                               seed: int) -> None:
    acts = [ACTS[a] for a in act_names[: len(widths) - 2]]
    net = mlp(acts, widths, seed)
    chain = to_chain(net)
    assert chain.n_inputs == widths[0] and chain.n_outputs == widths[-1]
    x = np.random.default_rng(seed).uniform(-4, 4, (16, widths[0]))
    np.testing.assert_allclose(chain.forward(x), net.evaluate(x), rtol=1e-9, atol=1e-9)
