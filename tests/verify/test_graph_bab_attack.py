"""The domain-guided attack of graph branch and bound: on a network whose violation hides
in a narrow bump with no gradient around it, the cut intervals of a domain lead the
attack into the bump; without the penalty the same starts stay where they are."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from verinet.bounds.graph import GraphModel
from verinet.ir import ops as O
from verinet.ir.graph import Network, Node
from verinet.ir.torch import evaluate_numpy
from verinet.types import InputError
from verinet.verify.graph_bab.attack import DomainAttack
from verinet.verify.graph_bab.options import DomainAttackOptions
from verinet.verify.graph_bab.root import make_root


def _bump_net() -> Network:
    """y = 1 - 200 * bump(x0), bump a triangle of height 0.01 on [0.49, 0.51]:
    y <= 0 exactly for x0 in [0.495, 0.505]; x1 is ignored."""
    W = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    nodes = (Node("fc", O.Linear(W, np.array([-0.49, -0.5, -0.51])), ("x",), (1, 3)),
             Node("r", O.Relu(), ("fc",), (1, 3)),
             Node("out", O.Linear(np.array([[-200.0, 400.0, -200.0]]), np.array([1.0])),
                  ("r",), (1, 1)))
    return Network("x", (1, 2), nodes, "out")


def _attack(weight: float) -> tuple[np.ndarray, np.ndarray]:
    net = _bump_net()
    root = make_root(GraphModel.of(net), torch.zeros(2, dtype=torch.float64),
                     torch.ones(2, dtype=torch.float64))
    assert root.size == 3  # every unit is unstable on the box
    lo, hi = (t.to(torch.float32).reshape(1, -1).repeat(4, 1) for t in root.unit_bounds())
    lo[:, 0] = 0.0  # the domain: x0 - 0.49 >= 0 (active) and x0 - 0.5 <= 0 (inactive)
    hi[:, 1] = 0.0
    starts = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]],
                          dtype=torch.float64)  # the box's vertices: zero gradient there
    C, b = torch.ones((4, 1, 1), dtype=torch.float64), torch.zeros((4, 1), dtype=torch.float64)
    attack = DomainAttack(root, DomainAttackOptions(steps=40, weight=weight))
    x = attack.points(lo, hi, starts, C, b).numpy()
    return x, evaluate_numpy(net, x)[:, 0]


def test_the_cut_intervals_lead_the_attack_into_the_bump() -> None:
    x, y = _attack(weight=1.0)
    assert (y <= 0).all(), (x, y)
    assert ((x >= 0) & (x <= 1)).all()  # never outside the box


def test_without_the_penalty_the_vertices_give_no_gradient() -> None:
    _, y = _attack(weight=0.0)
    assert (y > 0).all()


def test_bad_attack_options_are_refused() -> None:
    with pytest.raises(InputError, match="need domains >= 0, steps >= 1"):
        DomainAttackOptions(steps=0)
    with pytest.raises(InputError, match="need weight >= 0 and 0 <= share <= 1"):
        DomainAttackOptions(share=1.5)


def test_branch_and_bound_finds_a_planted_notch_through_its_domains() -> None:
    """A self-test instance whose counterexample graph BaB missed without the attack
    (mlp notch, seed 8): with the attack in every round it is found within 2,000 domains;
    without it the same search fills its queue cap and gives up."""
    from verinet.selftest.planted import instance_pair
    from verinet.selftest.run import _subject
    from verinet.verify.deadline import Deadline
    from verinet.verify.graph_bab import GraphBabOptions, graph_bab
    from verinet.verify.witness import Replayer

    inst = instance_pair("mlp", 2, 8)[0]
    assert inst.kind == "notch" and inst.truth == "sat"
    s = _subject(inst)
    outs = []
    for attack in (DomainAttackOptions(share=1.0), DomainAttackOptions(domains=0)):
        opts = GraphBabOptions(max_domains=2000, attack=attack)
        outs.append(graph_bab(s.views.graph, s.prop, Replayer(s.views.network, s.prop,
                                                               s.onnx_eval),
                              Deadline(120.0), options=opts))
    found, missed = outs
    assert found.counterexample is not None and not found.proven
    x = np.asarray(found.counterexample.x)
    assert ((x >= inst.box_lower) & (x <= inst.box_upper)).all()
    assert missed.counterexample is None and not missed.proven
