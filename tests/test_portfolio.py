"""The complete verifier against a brute-force oracle on tiny nets.

For every random tiny ReLU net and random (possibly disjunctive) property, the oracle
computes the exact minimum violation of every term.  A term with minimum > 1e-6 is
unreachable, one with minimum < -1e-6 reachable; the verifier must never contradict it.
Near-zero instances are not asserted (both answers are legitimate up to tolerance), but
a falsified verdict must still carry a witness that violates the property.
"""

import csv
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.nets import (
    draw_instance,
    float32_layers,
    random_layers,
    relu_network,
    relu_onnx,
)
from tests.oracle import exact_min_violation
from verinet.ir.chain import to_chain
from verinet.onnx_import.check import reference_evaluator
from verinet.spec.property import Halfspaces, Property, Term
from verinet.types import Box, Status
from verinet.verify.portfolio import VerifyOptions, verify

MARGIN = 1e-6
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "vnncomp"



@st.composite
def instances(draw):
    return draw_instance(draw, n_in=(1, 3), width=(2, 5), terms=(1, 3))


def _check_against_oracle(net, layers, prop, complete):
    chain = to_chain(net)
    exact = [exact_min_violation(chain, t.box, t.unsafe)[0] for t in prop.terms]
    res = verify(net, prop, reference_evaluator(relu_onnx(layers)), timeout=30.0,
                 options=VerifyOptions(complete=complete, pgd=_fast_pgd(), corner_pgd=None))
    if all(e > MARGIN for e in exact):
        assert res.status is not Status.FALSIFIED
        assert res.status is Status.VERIFIED, res  # complete: must decide
    if any(e < -MARGIN for e in exact):
        assert res.status is not Status.VERIFIED
        assert res.status is Status.FALSIFIED, res
    if res.status is Status.FALSIFIED:
        cex = res.counterexample
        term = prop.terms[cex.term]
        assert term.box.contains(cex.x)
        assert term.unsafe.violation(net.evaluate(cex.x)) <= 0
    if res.status is Status.VERIFIED:
        assert all(e > -MARGIN for e in exact)


def _fast_pgd():
    from verinet.attacks.property_pgd import PgdOptions

    return PgdOptions(steps=10, restarts=2)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_milp_portfolio_matches_oracle(inst):
    _check_against_oracle(*inst, complete="milp")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_input_bab_portfolio_matches_oracle(inst):
    _check_against_oracle(*inst, complete="input-bab")


def test_skip_connection_is_verified_on_the_graph():
    from verinet.ir import ops as O
    from verinet.ir.graph import Network, Node

    W = np.eye(2)
    nodes = (
        Node("fc", O.Linear(W, np.zeros(2)), ("x",), (1, 2)),
        Node("r", O.Relu(), ("fc",), (1, 2)),
        Node("skip", O.Binary("add"), ("r", "x"), (1, 2)),
    )
    net = Network("x", (1, 2), nodes, "skip")
    box = Box(np.full(2, -1.0), np.ones(2))
    prop = Property((Term(box, Halfspaces(np.array([[1.0, 0.0]]), np.array([-100.0]))),), 2, 2)
    res = verify(net, prop, None, timeout=5.0)
    assert res.status is Status.VERIFIED and res.reason.name == "PROVEN_BY_BOUNDS"


def test_unsupported_node_gives_unknown_naming_it():
    from verinet.ir import ops as O
    from verinet.ir.graph import Network, Node

    nodes = (
        Node("fc", O.Linear(np.eye(2), np.zeros(2)), ("x",), (1, 2)),
        Node("sq", O.Binary("mul"), ("fc", "x"), (1, 2)),
    )
    net = Network("x", (1, 2), nodes, "sq")
    box = Box(np.full(2, -1.0), np.ones(2))
    prop = Property((Term(box, Halfspaces(np.array([[1.0, 0.0]]), np.array([-100.0]))),), 2, 2)
    res = verify(net, prop, None, timeout=5.0)
    assert res.status is Status.UNKNOWN and res.reason.name == "UNSUPPORTED"
    assert "Binary 'sq' (mul of two input-dependent tensors" in res.message


@pytest.mark.parametrize("timeout", [0.5])
def test_timeout_is_respected(timeout):
    rng = np.random.default_rng(0)
    layers = float32_layers(random_layers(rng, [20, 60, 60, 60, 3], scale=0.5))
    net = relu_network(layers)
    box = Box(np.full(20, -1.0), np.ones(20))
    y = net.evaluate(box.center)
    prop = Property.robustness(box, int(np.argmax(y)), 3)
    res = verify(net, prop, None, timeout=timeout)
    assert res.seconds <= timeout * 1.1 + 2.0


def test_vertex_starts_cover_every_corner():
    from verinet.attacks.property_pgd import _corners

    rng = np.random.default_rng(0)
    got = _corners(3, 16, rng)
    assert got.shape == (16, 3)
    ids = (got * (1 << np.arange(3))).sum(axis=1)
    assert sorted(ids[:8]) == list(range(8)) and sorted(ids[8:]) == list(range(8))
    assert _corners(20, 5, rng).shape == (5, 20)


def test_mixed_starts_put_half_the_restarts_on_vertices():
    from verinet.attacks.property_pgd import PgdOptions, property_pgd

    layers = [(np.array([[1.0, -1.0]]), np.zeros(1)), (np.eye(1), np.zeros(1))]
    net = relu_network(layers)
    box = Box(np.zeros(2), np.ones(2))
    prop = Property((Term(box, Halfspaces(np.array([[1.0]]), np.array([-5.0]))),), 2, 1)
    for starts, n_vertex in (("vertices", 8), ("mixed", 4)):
        opts = PgdOptions(restarts=8, steps=1, initial_step=1e-9, final_step=1e-9,
                          starts=starts)
        x = property_pgd(net, prop, np.random.default_rng(0), opts).x  # never better: starts
        on_vertex = np.isclose(x, 0.0, atol=1e-6) | np.isclose(x, 1.0, atol=1e-6)
        assert on_vertex.all(axis=1).sum() >= n_vertex
        assert on_vertex.all(axis=1)[:n_vertex].all()


def test_pgd_walks_off_a_plateau():
    """A net whose loss is flat on most of the box: the unsafe set is a corner sliver."""
    from verinet.attacks.property_pgd import PgdOptions, property_pgd

    # y = relu(x0 - 0.8): zero gradient unless x0 > 0.8; unsafe: y >= 0.05
    layers = [(np.array([[1.0, 0.0]]), np.array([-0.8])), (np.eye(1), np.zeros(1))]
    net = relu_network(layers)
    box = Box(np.zeros(2), np.ones(2))
    prop = Property((Term(box, Halfspaces(np.array([[-1.0]]), np.array([-0.05]))),), 2, 1)
    opts = PgdOptions(restarts=1, steps=30)  # the single start is the (flat) centre
    found = [property_pgd(net, prop, np.random.default_rng(s), opts).violation.min() <= 0.0
             for s in range(10)]
    assert sum(found) >= 2  # 4 of 10 here; 0 without the random walk


def _shared_row(name):
    if not SHARED.is_dir():
        return None
    with (SHARED / "manifest.csv").open() as f:
        return next((r for r in csv.DictReader(f) if r["id"] == name), None)


@pytest.mark.slow
@pytest.mark.skipif(_shared_row("acasxu-1_9-prop_7") is None, reason="shared ACAS Xu absent")
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_acas_1_9_prop_7_falls_to_the_attack(seed):
    """Unsafe set: a sliver along a face, most of the box a zero-gradient plateau."""
    from verinet import api

    row = _shared_row("acasxu-1_9-prop_7")
    prop = api.read_property(SHARED / row["vnnlib"])
    model = api.load_model(SHARED / row["onnx"], input_box=prop.terms[0].box)
    res = api.verify(model, prop, timeout=30.0,
                     options=VerifyOptions(complete="none", alpha_crown=False, seed=seed))
    assert res.status is Status.FALSIFIED, res
    cex = res.counterexample
    assert prop.terms[cex.term].box.contains(cex.x)
    assert prop.terms[cex.term].unsafe.violation(model.onnx_eval(cex.x[None])[0]) <= 0
