"""Graph branch and bound against a brute-force oracle (one LP per activation pattern)
on tiny CNNs and ResNets: unsat exactly when the oracle's minimum violation is positive,
sat (with a replayed witness) when it is negative."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.graph_oracle import min_violation
from verinet.bounds.graph import GraphModel
from verinet.ir import ops as O
from verinet.ir.graph import Network, Node
from verinet.spec.property import Halfspaces, Property, Term
from verinet.types import Box, Status
from verinet.verify.deadline import Deadline
from verinet.verify.graph_bab import GraphBabOptions, GraphSplitOptions, graph_bab
from verinet.verify.witness import Replayer


def _conv(rng: np.random.Generator, c_in: int, c_out: int, k: int, s: int,
          pads: tuple[int, int, int, int]) -> O.Conv:
    return O.Conv(rng.normal(0, 0.7, size=(c_out, c_in, k, k)), rng.normal(0, 0.3, c_out),
                  (s, s), pads)


def tiny_resnet(rng: np.random.Generator) -> Network:
    """conv - relu - conv - (+x) - relu - dense on a 1x2x2 input (8 ReLUs)."""
    nodes = (Node("c1", _conv(rng, 1, 1, 3, 1, (1, 1, 1, 1)), ("x",), (1, 1, 2, 2)),
             Node("r1", O.Relu(), ("c1",), (1, 1, 2, 2)),
             Node("c2", _conv(rng, 1, 1, 3, 1, (1, 1, 1, 1)), ("r1",), (1, 1, 2, 2)),
             Node("add", O.Binary("add"), ("c2", "x"), (1, 1, 2, 2)),
             Node("r2", O.Relu(), ("add",), (1, 1, 2, 2)),
             Node("f", O.Reshape((4,)), ("r2",), (1, 4)),
             Node("fc", O.Linear(rng.normal(size=(3, 4)), rng.normal(0, 0.3, 3)), ("f",),
                  (1, 3)))
    return Network("x", (1, 1, 2, 2), nodes, "fc")


def tiny_cnn(rng: np.random.Generator) -> Network:
    """strided conv - relu - avgpool - bn - concat with a second conv branch - relu -
    dense on a 1x4x4 input (4 + 2 ReLUs)."""
    nodes = (Node("c1", _conv(rng, 1, 1, 2, 2, (0, 0, 0, 0)), ("x",), (1, 1, 2, 2)),
             Node("r1", O.Relu(), ("c1",), (1, 1, 2, 2)),
             Node("p", O.AveragePool((2, 2), (2, 2)), ("r1",), (1, 1, 1, 1)),
             Node("bn", O.ChannelAffine(rng.uniform(0.5, 1.5, 1), rng.normal(0, 0.3, 1)),
                  ("p",), (1, 1, 1, 1)),
             Node("c2", _conv(rng, 1, 1, 4, 4, (0, 0, 0, 0)), ("x",), (1, 1, 1, 1)),
             Node("cat", O.Concat(1, 2), ("bn", "c2"), (1, 2, 1, 1)),
             Node("f", O.Reshape((2,)), ("cat",), (1, 2)),
             Node("fc1", O.Linear(rng.normal(size=(2, 2)), rng.normal(0, 0.3, 2)), ("f",),
                  (1, 2)),
             Node("r2", O.Relu(), ("fc1",), (1, 2)),
             Node("fc2", O.Linear(rng.normal(size=(2, 2)), rng.normal(0, 0.3, 2)), ("r2",),
                  (1, 2)))
    return Network("x", (1, 1, 4, 4), nodes, "fc2")


def _instance(seed: int, make: object) -> tuple[Network, Property]:
    rng = np.random.default_rng(seed)
    net = make(rng)  # type: ignore[operator]
    n, m = net.n_inputs, net.n_outputs
    c, r = rng.uniform(-1, 1, n), rng.uniform(0.2, 1.0)
    box = Box(c - r, c + r)
    k = int(rng.integers(1, 3))
    A = rng.normal(size=(k, m))
    y = net.evaluate(rng.uniform(box.lower, box.upper, size=(64, n))) @ A.T
    b = np.quantile(y, rng.uniform(0.0, 0.25), axis=0)
    return net, Property((Term(box, Halfspaces(A, b)),), n, m)


@pytest.mark.parametrize("make", [tiny_resnet, tiny_cnn], ids=["resnet", "cnn"])
@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), iterations=st.sampled_from([0, 5, 20]))
def test_graph_bab_matches_the_oracle(make: object, seed: int, iterations: int) -> None:
    net, prop = _instance(seed, make)
    term = prop.terms[0]
    v, _ = min_violation(net, term.box, term.unsafe.A, term.unsafe.b)
    opts = GraphBabOptions(batch=8, split=GraphSplitOptions(iterations=iterations),
                           root_iterations=iterations)
    out = graph_bab(GraphModel.of(net), prop, Replayer(net, prop, None), Deadline(60),
                    options=opts)
    if v > 1e-7:
        assert out.proven and out.counterexample is None
    elif v < -1e-7:
        assert not out.proven and out.counterexample is not None
        cex = out.counterexample
        assert cex.confirmed and term.box.contains(cex.x)
        assert prop.violated_by(cex.x, net.evaluate(cex.x)) == 0
    assert not (out.proven and out.counterexample is not None)


def test_leaves_are_decided_exactly() -> None:
    """With no alpha/beta steps the bounds stay loose, so unsat is only reached through
    fully split domains decided by the leaf LP."""
    for seed in range(40):
        net, prop = _instance(seed, tiny_resnet)
        term = prop.terms[0]
        v, _ = min_violation(net, term.box, term.unsafe.A, term.unsafe.b)
        if v <= 1e-6:
            continue
        opts = GraphBabOptions(split=GraphSplitOptions(iterations=0), root_iterations=0)
        out = graph_bab(GraphModel.of(net), prop, Replayer(net, prop, None), Deadline(60),
                        options=opts)
        assert out.proven
        if out.leaves:
            return
    pytest.fail("no instance reached an exact leaf")


def test_graph_bab_needs_a_supported_graph() -> None:
    nodes = (Node("s", O.Softmax(-1), ("x",), (1, 2)),)
    net = Network("x", (1, 2), nodes, "s")
    box = Box(np.zeros(2), np.ones(2))
    prop = Property.robustness(box, 0, 2)
    from verinet.types import UnsupportedModelError

    with pytest.raises(UnsupportedModelError, match="Softmax 's'"):
        graph_bab(GraphModel.of(net), prop, Replayer(net, prop, None), Deadline(5))
    assert Status.UNKNOWN.value == "unknown"


def tiny_smooth(rng: np.random.Generator, act: type) -> Network:
    """dense - Sigmoid/Tanh - dense - ReLU - dense on 3 inputs (cut at 0 or midpoints)."""
    nodes = (Node("fc1", O.Linear(rng.normal(size=(4, 3)), rng.normal(0, 0.5, 4)), ("x",),
                  (1, 4)),
             Node("a1", act(), ("fc1",), (1, 4)),
             Node("fc2", O.Linear(rng.normal(size=(3, 4)), rng.normal(0, 0.5, 3)), ("a1",),
                  (1, 3)),
             Node("r2", O.Relu(), ("fc2",), (1, 3)),
             Node("fc3", O.Linear(rng.normal(size=(2, 3)), rng.normal(0, 0.5, 2)), ("r2",),
                  (1, 2)))
    return Network("x", (1, 3), nodes, "fc3")


@pytest.mark.parametrize("act", [O.Sigmoid, O.Tanh], ids=["sigmoid", "tanh"])
@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), quantile=st.sampled_from([0.0, 0.02, 0.3]))
def test_interval_cuts_on_smooth_units_stay_sound(act: type, seed: int, quantile: float) -> None:
    """A proof is never contradicted by 20,000 samples; a sat answer has a replayed
    witness; thresholds just below the sampled minimum are mostly proven (the cuts
    tighten the Sigmoid/Tanh relaxations until they do; not asserted: the budget is small)."""
    rng = np.random.default_rng(seed)
    net = tiny_smooth(rng, act)
    c, r = rng.uniform(-1, 1, 3), rng.uniform(0.3, 1.5)
    box = Box(c - r, c + r)
    A = rng.normal(size=(1, 2))
    xs = rng.uniform(box.lower, box.upper, size=(20000, 3))
    y = net.evaluate(xs) @ A.T
    lowest = float(y.min())
    b = np.array([np.quantile(y, quantile) - (0.05 if quantile == 0.0 else 0.0)])
    prop = Property((Term(box, Halfspaces(A, b)),), 3, 2)
    out = graph_bab(GraphModel.of(net), prop, Replayer(net, prop, None), Deadline(4),
                    options=GraphBabOptions(batch=16))
    if out.proven:
        assert lowest > b[0]
    if out.counterexample is not None:
        assert out.counterexample.confirmed and not out.proven
        assert prop.violated_by(out.counterexample.x, net.evaluate(out.counterexample.x)) == 0
    if quantile > 0:
        assert not out.proven


def test_sigmoid_instance_beyond_alpha_crown(vnncomp_cnn_dir) -> None:
    """ERAN's 6x200 sigmoid MLP, MNIST image 3334 at eps 0.012: alpha-CROWN on the output
    leaves one term open; the search (its root tightens every intermediate layer, then
    cuts) proves it (VNN-COMP 2021 ground truth: unsat)."""
    from verinet.bounds.graph import graph_alpha_crown
    from verinet.onnx_import import load_onnx
    from verinet.spec.matrices import stacked_terms
    from verinet.spec.vnnlib import read_vnnlib

    net = load_onnx(vnncomp_cnn_dir / "onnx" / "ffnnSIGMOID__Point_6x200.onnx",
                    check=False).network
    prop = read_vnnlib(vnncomp_cnn_dir / "vnnlib" / "eran_sigmoid_2021" /
                       "mnist_spec_idx_3334_eps_0.01200.vnnlib", net.n_inputs, net.n_outputs)
    gm = GraphModel.of(net)
    lo, hi, A, b = stacked_terms(prop)
    lower = graph_alpha_crown(gm, lo[:1], hi[:1], A[:, 0]).lower[0] - b[:, 0]
    assert (lower <= 0).any()
    out = graph_bab(gm, prop, Replayer(net, prop, None), Deadline(60))
    assert out.proven


def test_a_round_that_would_end_past_the_deadline_is_not_started() -> None:
    from verinet.verify.graph_bab.search import _hopeless

    assert not _hopeless(None, 1000, 256, 0.01)             # no pace yet (root round)
    assert not _hopeless((0.001, 0.0), 1000, 256, 1.0)      # 0.256 s fits in 1 s
    assert _hopeless((0.01, 0.9), 1000, 256, 1.0)           # 2.56 s, cannot empty the queue
    assert not _hopeless((0.01, 0.9), 200, 256, 1.0)        # could end it: most were proven
    assert _hopeless((0.01, 0.2), 200, 256, 1.0)            # most were split: it will not
