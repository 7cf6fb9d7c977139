"""The MILP encoding of graphs (verinet.milp.graph_encode): exact at every point (the
input fixed, each output is pinned to the network's value) on random CNNs with every
piecewise-linear op, and exact optima against the brute-force oracle on tiny CNNs and
ResNets."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.graph_oracle import min_violation
from tests.graphs import random_graph
from tests.verify.test_graph_bab import tiny_cnn, tiny_resnet, tiny_smooth
from verinet.bounds.graph import GraphModel
from verinet.ir import ops as O
from verinet.milp.backend import SolverStatus, make_backend
from verinet.milp.graph_encode import GraphEncoder, graph_node_bounds, milp_lacking
from verinet.milp.problem import graph_problem
from verinet.milp.solve import check_term
from verinet.spec.property import Halfspaces
from verinet.types import Box, InputError, Status, UnsupportedModelError

PIECEWISE = ("relu", "leaky", "clip")


def _box(net, rng: np.random.Generator, width: float) -> Box:
    c = rng.uniform(-0.5, 0.5, net.n_inputs)
    return Box(c - width, c + width)


def _fixed_output(gm, bounds, box: Box, x: np.ndarray, j: int, sign: float) -> float:
    """``sign * y_j`` minimised with the input fixed at ``x`` (a point of ``box``)."""
    be = make_backend("highs")
    enc = GraphEncoder(be, gm, box, bounds).encode()
    be.set_var_bounds(enc.x, x, x)
    be.set_objective([enc.outputs[j]], [sign])
    be.set_time_limit(30.0)
    res = be.solve()
    assert res.status is SolverStatus.OPTIMAL
    return float(res.objective)


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), width=st.sampled_from([0.05, 0.3]))
def test_encoding_is_exact_at_every_point(seed: int, width: float) -> None:
    net = random_graph(seed, acts=PIECEWISE, depth=3)
    gm = GraphModel.of(net)
    rng = np.random.default_rng(seed)
    box = _box(net, rng, width)
    bounds = graph_node_bounds(gm, box)
    for _ in range(2):
        x = box.lower + rng.uniform(size=box.dim) * (box.upper - box.lower)
        y = net.evaluate(x)
        j = int(rng.integers(y.size))
        lo = _fixed_output(gm, bounds, box, x, j, 1.0)
        hi = -_fixed_output(gm, bounds, box, x, j, -1.0)
        tol = 1e-6 * (1.0 + abs(y[j]))
        assert lo == pytest.approx(y[j], abs=tol) and hi == pytest.approx(y[j], abs=tol)


@pytest.mark.parametrize("make", [tiny_resnet, tiny_cnn], ids=["resnet", "cnn"])
@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), width=st.sampled_from([0.1, 0.5]))
def test_graph_milp_matches_the_oracle(make: object, seed: int, width: float) -> None:
    rng = np.random.default_rng(seed)
    net = make(rng)  # type: ignore[operator]
    gm = GraphModel.of(net)
    box = _box(net, rng, width)
    m = net.n_outputs
    A = rng.normal(size=(2, m))
    b = rng.normal(0, 0.3, 2)
    exact, _ = min_violation(net, box, A, b)
    out = check_term(graph_problem(gm, graph_node_bounds(gm, box)), box, Halfspaces(A, b),
                     time_limit=30.0)
    if out.status is Status.VERIFIED:
        assert exact > 0
    elif out.status is Status.FALSIFIED:
        assert out.candidate is not None and box.contains(out.candidate, tol=1e-9)
        assert exact <= 1e-6
        assert out.candidate_violation <= 1e-6
    else:  # only within the tolerance band
        assert abs(exact) <= 1e-5


def test_maxpool_windows_need_binaries_only_where_they_overlap() -> None:
    rng = np.random.default_rng(3)
    net = random_graph(11, blocks=("maxpool",), acts=("relu",), depth=1)
    assert any(isinstance(n.op, O.MaxPool) for n in net.nodes)
    gm = GraphModel.of(net)
    point = _box(net, rng, 0.0)
    enc = GraphEncoder(make_backend("highs"), gm, point, graph_node_bounds(gm, point)).encode()
    assert enc.n_binaries == 0  # a single point: every window has one candidate


def test_smooth_nodes_are_named_and_refused() -> None:
    net = tiny_smooth(np.random.default_rng(0), O.Sigmoid)
    gm = GraphModel.of(net)
    bad = milp_lacking(gm)
    assert bad and all(op == "Sigmoid" for op, _, _ in bad)
    box = Box(np.full(3, -0.1), np.full(3, 0.1))
    with pytest.raises(UnsupportedModelError, match=r"MILP encoding: .*Sigmoid"):
        GraphEncoder(make_backend("highs"), gm, box, graph_node_bounds(gm, box))


def test_bounds_must_fit_the_graph() -> None:
    net = tiny_resnet(np.random.default_rng(0))
    gm = GraphModel.of(net)
    box = Box(np.full(4, -0.1), np.full(4, 0.1))
    bounds = graph_node_bounds(gm, box)
    bounds["r1"] = (np.zeros(3), np.zeros(3))
    with pytest.raises(InputError, match="bounds of node 'r1' have shape"):
        GraphEncoder(make_backend("highs"), gm, box, bounds)
    with pytest.raises(InputError, match="box has 3 inputs"):
        GraphEncoder(make_backend("highs"), gm, Box(np.zeros(3), np.ones(3)),
                     graph_node_bounds(gm, box))


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_lp_tightening_is_sound_and_no_looser(seed: int) -> None:
    from tests.graphs import sample_box
    from verinet.ir.torch import TorchNetwork
    from verinet.milp.graph_tighten import tighten_graph

    net = random_graph(seed, acts=PIECEWISE, depth=3)
    gm = GraphModel.of(net)
    rng = np.random.default_rng(seed)
    box = _box(net, rng, 0.3)
    base = graph_node_bounds(gm, box)
    tight = tighten_graph(gm, box, base)
    pts = sample_box(rng, box.lower, box.upper, 200)
    import torch

    with torch.no_grad():
        vals = TorchNetwork(net).run({"x": torch.tensor(pts).reshape(
            (len(pts),) + net.input_shape[1:])}, list(gm.order[1:]))
    for n in gm.order[1:]:
        lo, hi = tight[n]
        assert (lo >= base[n][0] - 1e-12).all() and (hi <= base[n][1] + 1e-12).all()
        if n in gm.folded:  # it absorbed a neighbour: not the network's node any more
            continue
        v = vals[n].reshape(len(pts), -1).numpy()
        assert (v >= lo - 1e-9).all() and (v <= hi + 1e-9).all(), n


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), width=st.sampled_from([0.02, 0.3]))
def test_binary_count_is_known_before_encoding(seed: int, width: float) -> None:
    from verinet.milp.graph_encode import n_binaries

    net = random_graph(seed, acts=PIECEWISE, depth=3)
    gm = GraphModel.of(net)
    box = _box(net, np.random.default_rng(seed), width)
    bounds = graph_node_bounds(gm, box)
    enc = GraphEncoder(make_backend("highs"), gm, box, bounds).encode()
    assert n_binaries(gm, bounds) == enc.n_binaries


@pytest.mark.parametrize("seed", range(6))
def test_what_the_milp_encoding_lacks_is_exactly_the_smooth_nodes(seed: int) -> None:
    net = random_graph(seed, depth=4)  # every block and activation kind
    gm = GraphModel.of(net)
    smooth = {n.name for n in net.nodes if isinstance(n.op, (O.Sigmoid, O.Tanh))}
    lacking = milp_lacking(gm)
    assert {name for _, name, _ in lacking} == smooth & set(gm.order)
    assert all(op in ("Sigmoid", "Tanh") for op, _, _ in lacking)
