"""Graph branch and bound on MaxPool nets: a domain with every ReLU cut still has MaxPool
nodes, and the graph's MILP decides it exactly, so the search is complete there.  Checked
against the whole-box graph MILP (exact: tests/milp/test_graph_encode.py) on tiny nets
whose bounds stay loose (no alpha/beta steps), so leaves are reached."""

from __future__ import annotations

import numpy as np

from tests.verify.test_graph_bab import _conv
from verinet.bounds.graph import GraphModel
from verinet.ir import ops as O
from verinet.ir.graph import Network, Node
from verinet.milp.graph_encode import graph_node_bounds
from verinet.milp.problem import graph_problem
from verinet.milp.solve import check_term
from verinet.spec.property import Halfspaces, Property, Term
from verinet.types import Box, Status
from verinet.verify.deadline import Deadline
from verinet.verify.graph_bab import GraphBabOptions, GraphSplitOptions, graph_bab
from verinet.verify.witness import Replayer


def tiny_maxpool(rng: np.random.Generator) -> Network:
    """conv - relu - maxpool 2x2 - dense on a 1x2x2 input (4 ReLUs, one window)."""
    nodes = (Node("c1", _conv(rng, 1, 1, 3, 1, (1, 1, 1, 1)), ("x",), (1, 1, 2, 2)),
             Node("r1", O.Relu(), ("c1",), (1, 1, 2, 2)),
             Node("c2", _conv(rng, 1, 2, 1, 1, (0, 0, 0, 0)), ("r1",), (1, 2, 2, 2)),
             Node("p", O.MaxPool((2, 2), (2, 2)), ("c2",), (1, 2, 1, 1)),
             Node("f", O.Reshape((2,)), ("p",), (1, 2)),
             Node("fc", O.Linear(rng.normal(size=(2, 2)), rng.normal(0, 0.3, 2)), ("f",),
                  (1, 2)))
    return Network("x", (1, 1, 2, 2), nodes, "fc")


def test_maxpool_leaves_are_decided_by_the_graph_milp() -> None:
    leaves = decided = 0
    for seed in range(30):
        rng = np.random.default_rng(seed)
        net = tiny_maxpool(rng)
        gm = GraphModel.of(net)
        c, r = rng.uniform(-1, 1, 4), rng.uniform(0.3, 1.0)
        box = Box(c - r, c + r)
        A = rng.normal(size=(1, 2))
        y = net.evaluate(rng.uniform(box.lower, box.upper, size=(64, 4))) @ A.T
        bvec = (np.quantile(y, rng.uniform(0.0, 0.2), axis=0) if seed % 2 else
                y.min(axis=0) - rng.uniform(0.0, 0.05))
        prop = Property((Term(box, Halfspaces(A, bvec)),), 4, 2)
        exact = check_term(graph_problem(gm, graph_node_bounds(gm, box)), box,
                           Halfspaces(A, bvec), time_limit=30.0)
        opts = GraphBabOptions(batch=4, split=GraphSplitOptions(iterations=0),
                               root_iterations=0, root_tighten=0)
        out = graph_bab(gm, prop, Replayer(net, prop, None), Deadline(60), options=opts)
        leaves += out.leaves
        if exact.status is Status.VERIFIED:
            assert out.proven and out.counterexample is None and out.unknown_leaves == 0
            decided += out.leaves > 0
        elif exact.status is Status.FALSIFIED:
            assert not out.proven
            if out.counterexample is not None:
                x = out.counterexample.x
                assert box.contains(x) and prop.violated_by(x, net.evaluate(x)) == 0
    assert leaves > 0 and decided > 0  # leaves were reached and proved robustness
