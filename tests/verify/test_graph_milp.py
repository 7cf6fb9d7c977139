"""``--complete milp`` on models without a dense chain: the portfolio encodes the MILP
from the graph (sparse convolution rows, big-M from LP-tightened graph bounds) and agrees
with the brute-force oracle on tiny CNNs and ResNets; a Sigmoid net is refused with the
node named."""

from __future__ import annotations

import numpy as np
import pytest

from tests.graph_oracle import min_violation
from tests.verify.test_graph_bab import _instance, tiny_cnn, tiny_resnet, tiny_smooth
from verinet.ir import ops as O
from verinet.spec.property import Property
from verinet.types import Box, Status
from verinet.verify.portfolio import VerifyOptions, verify
from verinet.verify.result import Reason

OPTS = VerifyOptions(attack=False, alpha_crown=False, complete="milp")


@pytest.mark.parametrize("make", [tiny_resnet, tiny_cnn], ids=["resnet", "cnn"])
def test_graph_milp_verdicts_match_the_oracle(make: object) -> None:
    ran = 0
    for seed in range(12):
        net, prop = _instance(seed, make)
        term = prop.terms[0]
        v, _ = min_violation(net, term.box, term.unsafe.A, term.unsafe.b)
        res = verify(net, prop, None, 60.0, OPTS)
        ran += dict(res.stats).get("milp_s", 0.0) > 0
        if res.status is Status.VERIFIED:
            assert v > 0, seed
        elif res.status is Status.FALSIFIED:
            assert v <= 1e-9, seed
            x = res.counterexample.x
            assert term.box.contains(x) and prop.violated_by(x, net.evaluate(x)) == 0
        else:
            assert abs(v) <= 1e-5, (seed, res.reason)
    assert ran >= 3  # the MILP itself decided instances, not only the bounds


def test_graph_milp_names_the_nodes_it_cannot_encode() -> None:
    net = tiny_smooth(np.random.default_rng(1), O.Tanh)
    box = Box(np.full(3, -0.5), np.full(3, 0.5))
    label = int(np.argmax(net.evaluate(np.zeros(3))))
    prop = Property.robustness(box, label, net.n_outputs)
    res = verify(net, prop, None, 30.0, OPTS)
    if res.status is Status.VERIFIED:  # the bounds alone proved it: pick a harder box
        pytest.skip("bounds proved the property")
    assert res.status is Status.UNKNOWN and res.reason is Reason.INCOMPLETE
    assert "no exact MILP encoding for" in res.message and "Tanh" in res.message
