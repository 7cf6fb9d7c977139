"""Soundness of the graph engine on random small graphs: every sampled output (uniform
points and box vertices) lies inside the interval, CROWN, alpha-CROWN and float32 bounds,
for convolutions with random stride/padding/dilation/groups, average and max pooling,
residual Add/Sub, Concat, folded batch norm, constant scaling, Transpose and every
activation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.graphs import ACTS, BLOCKS, boxes_and_rows, random_graph, sample_box
from verinet.bounds.graph import GraphModel, GraphOptions, graph_alpha_crown, graph_crown

METHODS = ("interval", "crown", "alpha", "float32")  # "interval": intermediate bounds only


def _bounds(gm: GraphModel, lo: np.ndarray, hi: np.ndarray, method: str, C: np.ndarray):
    if method == "interval":
        return graph_crown(gm, lo, hi, C, GraphOptions(intermediate="interval"))
    if method == "crown":
        return graph_crown(gm, lo, hi, C)
    if method == "float32":
        return graph_crown(gm, lo, hi, C, GraphOptions(dtype=torch.float32))
    return graph_alpha_crown(gm, lo, hi, C, iterations=4, lr=0.3)


def _check(seed: int, blocks: tuple[str, ...], acts: tuple[str, ...], radius: float) -> None:
    net = random_graph(seed, blocks, acts)
    gm = GraphModel.of(net)
    lo, hi, C, rng = boxes_and_rows(net, seed, radius)
    widths = []
    for method in METHODS:
        res = _bounds(gm, lo, hi, method, C)
        for b in range(2):
            y = net.evaluate(sample_box(rng, lo[b], hi[b], 300)) @ C.T
            assert np.all(y >= res.lower[b]), (method, float((res.lower[b] - y).max()))
            assert np.all(y <= res.upper[b]), (method, float((y - res.upper[b]).max()))
        widths.append(res.upper - res.lower)
    assert np.all(widths[2] <= widths[1] + 1e-9)  # alpha-CROWN never looser than CROWN


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), radius=st.sampled_from([0.01, 0.1, 0.5]))
def test_random_graphs_are_sound(seed: int, radius: float) -> None:
    _check(seed, BLOCKS, ACTS, radius)


@pytest.mark.parametrize("block", BLOCKS)
@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_each_block_is_sound(block: str, seed: int) -> None:
    _check(seed, (block,), ACTS, 0.2)


@pytest.mark.parametrize("act", ACTS)
@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_each_activation_is_sound(act: str, seed: int) -> None:
    _check(seed, ("conv", "residual", "maxpool"), (act,), 0.3)


def test_degenerate_box_is_exact() -> None:
    net = random_graph(7)
    gm = GraphModel.of(net)
    x = np.random.default_rng(0).uniform(-1, 1, net.n_inputs)
    res = graph_crown(gm, x, x)
    y = net.evaluate(x)
    assert np.all(res.lower[0] <= y) and np.all(y <= res.upper[0])
    assert np.max(res.upper[0] - res.lower[0]) < 1e-8 * (1 + np.abs(y).max())
