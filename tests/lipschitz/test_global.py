"""The global Lipschitz bound holds: sampled pairs of points on random small graphs
(convolutions, pooling, residual sums, concatenation, every activation) never change a
margin or the output by more than the bound allows, in L-inf, L2 and L1; power
iteration's estimate stays below each node's L2 bound; the circulant bound of a
convolution covers its dense matrix's spectral norm."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.graphs import random_graph
from tests.nets import random_layers, relu_network
from verinet.bounds.graph import GraphModel
from verinet.bounds.graph.affine import ConvRule
from verinet.lipschitz.global_bound import affine_norm, conv_spectral_bound, global_lipschitz
from verinet.types import Guarantee

ORD = {"linf": np.inf, "l2": 2, "l1": 1}


@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_sampled_pairs_respect_the_global_bound(norm: str, seed: int) -> None:
    net = random_graph(seed)
    gm = GraphModel.of(net)
    G = global_lipschitz(gm, norm)
    assert G.guarantee is Guarantee.SOUND
    rng = np.random.default_rng(seed)
    n = net.n_inputs
    a = rng.uniform(-1, 1, size=(200, n))
    b = a + rng.normal(0, 10.0 ** rng.uniform(-3, 0, size=(200, 1)), size=(200, n))
    ya, yb = net.evaluate(a), net.evaluate(b)
    dx = np.linalg.norm(a - b, ord=ORD[norm], axis=1)
    dy = np.linalg.norm(ya - yb, ord=ORD[norm], axis=1)
    assert np.all(dy <= G.output * dx * (1 + 1e-9))
    for label in range(net.n_outputs):
        L = G.margins(label)
        others = [j for j in range(net.n_outputs) if j != label]
        dg = np.abs((ya[:, [label]] - ya[:, others]) - (yb[:, [label]] - yb[:, others]))
        assert np.all(dg <= L[None, :] * dx[:, None] * (1 + 1e-9))
    if norm == "l2":
        for node in G.nodes:
            if node.estimate is not None:
                assert node.estimate <= node.op_norm * (1 + 1e-9)


def test_dense_net_l2_bound_is_the_product_of_spectral_norms() -> None:
    rng = np.random.default_rng(0)
    layers = random_layers(rng, [5, 7, 4, 3])
    G = global_lipschitz(GraphModel.of(relu_network(layers)), "l2")
    want = np.prod([np.linalg.norm(W, 2) for W, _ in layers])
    assert G.output == pytest.approx(want, rel=1e-8)
    for node in G.nodes:
        if node.estimate is not None:  # power iteration converges on these small layers
            assert node.estimate == pytest.approx(node.op_norm, rel=1e-4)


def test_linf_bound_uses_exact_row_sums() -> None:
    rng = np.random.default_rng(1)
    layers = random_layers(rng, [4, 6, 3])
    G = global_lipschitz(GraphModel.of(relu_network(layers)), "linf")
    want = np.abs(layers[0][0]).sum(1).max() * np.abs(layers[1][0]).sum(1).max()
    assert G.output == pytest.approx(want, rel=1e-8)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_conv_bound_covers_the_dense_spectral_norm(seed: int) -> None:
    net = random_graph(seed, ("conv",))
    gm = GraphModel.of(net)
    rules = gm.rules_on(torch.float64, "cpu")
    for name in gm.order[1:]:
        rule = rules[name]
        if not isinstance(rule, ConvRule):
            continue
        z = gm.inputs[name][0]
        n = gm.size(z)
        eye = torch.eye(n, dtype=torch.float64).reshape((n,) + gm.shape[z])
        dense = rule.lin([eye]).reshape(n, -1).numpy().T
        exact = np.linalg.norm(dense, 2)
        assert exact <= conv_spectral_bound(rule) * (1 + 1e-9)
        kept = affine_norm(gm, name, rule, "l2")  # small: the matrix's own SVD
        assert exact <= kept <= exact * (1 + 1e-8)
        assert kept <= np.sqrt(np.abs(dense).sum(0).max() * np.abs(dense).sum(1).max()) + 1e-9
