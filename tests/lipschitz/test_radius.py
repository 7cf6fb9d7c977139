"""The Lipschitz radius is certified: never above the exact radius (brute-force oracle on
tiny ReLU nets), and no sampled point of the ball it certifies is misclassified (random
graphs with convolutions, pooling, residual sums and every activation, L-inf and L2)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.graphs import random_graph
from tests.nets import random_layers, relu_network
from tests.oracle import exact_radius
from verinet.bounds.graph import GraphModel
from verinet.certify.crown_radius import crown_radius
from verinet.ir.chain import to_chain
from verinet.lipschitz import lipschitz_radius
from verinet.lipschitz.radius import point_margins
from verinet.types import Box, Guarantee, InputError


def _bundled():
    from verinet.api import load_model
    from verinet.examples import data_path, model_path

    d = np.load(data_path())
    return load_model(model_path()), d["x"], d["y"]


def _labelled(net, x0: np.ndarray) -> int:
    return int(np.argmax(net.evaluate(x0)))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_radius_never_exceeds_the_exact_radius(seed: int) -> None:
    rng = np.random.default_rng(seed)
    net = relu_network(random_layers(rng, [2, 4, 3, 3]))
    x0 = rng.uniform(0.2, 0.8, size=2)
    label = _labelled(net, x0)
    dom = (np.zeros(2), np.ones(2))
    r = lipschitz_radius(GraphModel.of(net), x0, label, math.inf, dom)
    exact = exact_radius(to_chain(net), x0, label, Box(*dom))
    assert 0.0 <= r.radius <= exact + 1e-9
    assert r.guarantee is Guarantee.SOUND


@pytest.mark.parametrize("norm", ["linf", "l2"])
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_no_sampled_point_inside_the_radius_is_misclassified(norm: str, seed: int) -> None:
    net = random_graph(seed)
    gm = GraphModel.of(net)
    rng = np.random.default_rng(seed)
    n = net.n_inputs
    x0 = rng.uniform(-1, 1, size=n)
    label = _labelled(net, x0)
    dom = (np.full(n, -2.0), np.full(n, 2.0))
    r = lipschitz_radius(gm, x0, label, math.inf, dom, norm=norm)
    if r.radius <= 0:
        return
    d = rng.normal(size=(400, n))
    if norm == "linf":
        d = np.sign(d) * rng.uniform(0.5, 1.0, size=d.shape)  # near the ball's vertices
        d /= np.abs(d).max(axis=1, keepdims=True)
    else:
        d /= np.linalg.norm(d, axis=1, keepdims=True)
    pts = np.clip(x0 + r.radius * d * rng.uniform(0.9, 1.0, size=(400, 1)), *dom)
    y = net.evaluate(pts)
    others = np.delete(y, label, axis=1)
    assert np.all(y[:, label] > others.max(axis=1))


def test_radius_on_the_bundled_model_is_below_crowns_and_positive() -> None:
    m, x, y = _bundled()
    gm = GraphModel.of(m.network)
    n = m.network.n_inputs
    dom = (np.zeros(n), np.ones(n))
    for i in range(3):
        r = lipschitz_radius(gm, x[i], int(y[i]), math.inf, dom)
        c = crown_radius(gm, x[i], int(y[i]), math.inf, dom)
        assert 0 < r.radius <= c
        assert r.ball >= r.radius and len(r.constants) == m.network.n_outputs - 1
        assert all(mj / lj >= r.radius - 1e-12 for mj, lj in zip(r.margins, r.constants,
                                                                 strict=True))


def test_misclassified_or_tied_point_gets_radius_zero() -> None:
    rng = np.random.default_rng(1)
    net = relu_network(random_layers(rng, [2, 3, 3]))
    x0 = np.array([0.5, 0.5])
    label = _labelled(net, x0)
    wrong = (label + 1) % 3
    dom = (np.zeros(2), np.ones(2))
    gm = GraphModel.of(net)
    assert (point_margins(gm, x0, wrong) <= 0).any()
    r = lipschitz_radius(gm, x0, wrong, math.inf, dom)
    assert r.radius == 0.0 and r.constants == ()


def test_radius_respects_the_upper_cap_and_refuses_l1() -> None:
    m, x, y = _bundled()
    gm = GraphModel.of(m.network)
    n = m.network.n_inputs
    dom = (np.zeros(n), np.ones(n))
    assert lipschitz_radius(gm, x[0], int(y[0]), 1e-4, dom).radius <= 1e-4
    with pytest.raises(InputError, match="linf or l2 balls"):
        lipschitz_radius(gm, x[0], int(y[0]), 1.0, dom, norm="l1")
