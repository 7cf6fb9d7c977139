"""Soundness of the Jacobian bounds: autograd gradients of ``C f`` at sampled points of
each box (uniform points and vertices) lie inside the interval bounds, on random small
graphs with every op the graph engine bounds (convolutions, pooling, residual sums,
concatenation, batch norm, every activation)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.graphs import ACTS, BLOCKS, boxes_and_rows, random_graph, sample_box
from tests.nets import random_layers, relu_network
from verinet.bounds.graph import GraphModel
from verinet.bounds.graph import activations as act
from verinet.ir import ops as O
from verinet.ir.graph import Network, Node
from verinet.ir.torch import torch_network
from verinet.lipschitz import jacobian_bounds
from verinet.lipschitz.jacobian import derivative_bounds
from verinet.types import InputError


def _gradients(net: Network, C: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """(P, K, n) autograd Jacobians of ``C f`` at the points."""
    mod = torch_network(net, torch.float64)
    Ct = torch.as_tensor(C)
    x = torch.as_tensor(pts).reshape((len(pts),) + net.input_shape[1:]).requires_grad_(True)
    out = mod(x).reshape(len(pts), -1) @ Ct.T
    rows = [torch.autograd.grad(out[:, k].sum(), x, retain_graph=True)[0].reshape(len(pts), -1)
            for k in range(C.shape[0])]
    return torch.stack(rows, dim=1).numpy()


def _check(net: Network, radius: float, seed: int) -> None:
    gm = GraphModel.of(net)
    lo, hi, C, rng = boxes_and_rows(net, seed, radius)
    J = jacobian_bounds(gm, lo, hi, C)
    mid, rad = J.mid.numpy(), J.rad.numpy()
    assert np.all(rad >= 0) and np.all(J.mag.numpy() >= np.abs(mid) + rad - 1e-12)
    for b in range(2):
        g = _gradients(net, C, sample_box(rng, lo[b], hi[b], 60))
        excess = np.abs(g - mid[b]) - rad[b]
        assert excess.max() <= 1e-9 * (1 + np.abs(g).max()), float(excess.max())
        norms = J.dual_norms("linf")[b]
        assert np.all(np.abs(g).sum(-1) <= norms + 1e-12)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), radius=st.sampled_from([0.01, 0.1, 0.5]))
def test_random_graphs_gradients_inside_bounds(seed: int, radius: float) -> None:
    _check(random_graph(seed, BLOCKS, ACTS), radius, seed)


@pytest.mark.parametrize("block", BLOCKS)
@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_each_block_gradients_inside_bounds(block: str, seed: int) -> None:
    _check(random_graph(seed, (block,), ACTS), 0.2, seed)


def test_point_box_of_a_relu_net_is_exact() -> None:
    """On a box of one point away from every kink, the bounds are the gradient itself."""
    rng = np.random.default_rng(3)
    net = relu_network(random_layers(rng, [4, 6, 5, 3]))
    x = rng.uniform(-1, 1, size=(1, 4))
    C = np.eye(3)
    J = jacobian_bounds(GraphModel.of(net), x, x, C)
    g = _gradients(net, C, x)[0]
    assert np.allclose(J.mid.numpy()[0], g, atol=1e-12)
    assert np.all(J.rad.numpy() == 0)


def test_dual_norms_match_their_definition() -> None:
    rng = np.random.default_rng(0)
    net = relu_network(random_layers(rng, [3, 4, 2]))
    x = rng.uniform(-1, 1, size=(1, 3))
    J = jacobian_bounds(GraphModel.of(net), x, x, np.eye(2))
    g = np.abs(J.mid.numpy()[0])
    assert np.allclose(J.dual_norms("linf")[0], g.sum(-1))
    assert np.allclose(J.dual_norms("l2")[0], np.sqrt((g ** 2).sum(-1)))
    assert np.allclose(J.dual_norms("l1")[0], g.max(-1))
    with pytest.raises(InputError, match="norm must be one of linf, l2, l1"):
        J.dual_norms("l3")


@pytest.mark.parametrize("rule, lo, hi, want", [
    (act.ReluRule(), -1.0, -0.0, (0.0, 0.0)),
    (act.ReluRule(), 0.0, 2.0, (1.0, 1.0)),
    (act.ReluRule(), -1.0, 2.0, (0.0, 1.0)),
    (act.LeakyReluRule(0.1), -2.0, -1.0, (0.1, 0.1)),
    (act.LeakyReluRule(0.1), -2.0, 1.0, (0.1, 1.0)),
    (act.ClipRule(0.0, 1.0), 0.2, 0.8, (1.0, 1.0)),
    (act.ClipRule(0.0, 1.0), 1.0, 3.0, (0.0, 0.0)),
    (act.ClipRule(0.0, 1.0), 0.5, 3.0, (0.0, 1.0)),
    (act.SmoothRule("sigmoid"), -1.0, 2.0, (0.25 * (1 - np.tanh(1.0) ** 2), 0.25)),
    (act.SmoothRule("tanh"), 1.0, 2.0, (1 - np.tanh(2.0) ** 2, 1 - np.tanh(1.0) ** 2)),
])
def test_derivative_bounds(rule: object, lo: float, hi: float, want: tuple[float, float]) -> None:
    d_lo, d_hi = derivative_bounds(rule, torch.tensor([lo], dtype=torch.float64),
                                   torch.tensor([hi], dtype=torch.float64))
    assert float(d_lo) == pytest.approx(want[0], abs=1e-12)
    assert float(d_hi) == pytest.approx(want[1], abs=1e-12)


def test_maxpool_with_a_dominating_unit_routes_its_gradient_exactly() -> None:
    """A window where one unit's lower bound beats every other upper bound passes the
    gradient to that unit alone (no widening)."""
    x = "x"
    nodes = (Node("pool", O.MaxPool((2, 2), (2, 2)), (x,), (1, 1, 1, 1)),
             Node("flat", O.Reshape((1,)), ("pool",), (1, 1)))
    net = Network(x, (1, 1, 2, 2), nodes, "flat")
    lo = np.array([[5.0, 0.0, 0.0, 0.0]])
    hi = np.array([[6.0, 1.0, 1.0, 1.0]])
    J = jacobian_bounds(GraphModel.of(net), lo, hi, np.eye(1))
    assert np.allclose(J.mid.numpy()[0, 0], [1, 0, 0, 0]) and np.all(J.rad.numpy() == 0)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_variation_bounds_the_change_from_the_centre(seed: int) -> None:
    """Per-box rows (B, K, m) and the mean value bound of every row's change."""
    net = random_graph(seed)
    gm = GraphModel.of(net)
    rng = np.random.default_rng(seed)
    n = net.n_inputs
    c = rng.uniform(-1, 1, size=(2, n))
    r = rng.uniform(0.0, 0.3, size=(2, n))
    C = rng.normal(size=(2, 3, net.n_outputs))
    var = jacobian_bounds(gm, c - r, c + r, C).variation(r)
    for b in range(2):
        pts = sample_box(rng, c[b] - r[b], c[b] + r[b], 100)
        change = np.abs((net.evaluate(pts) - net.evaluate(c[b])) @ C[b].T)
        assert np.all(change <= var[b] + 1e-12)
