"""auto on a small model the MILP encodes: the exact MILP runs first (on a share of the
budget), then graph branch and bound; large or non-encodable models skip it."""

from __future__ import annotations

import pytest

from verinet.selftest.planted import instance_pair
from verinet.selftest.run import _subject
from verinet.types import Status
from verinet.verify.portfolio import VerifyOptions, _milp_first, verify


@pytest.fixture(scope="module")
def cnn_twins():
    return [_subject(i) for i in instance_pair("cnn", 0, 1)]


def test_the_milp_finds_a_hidden_counterexample_first(cnn_twins) -> None:
    sat, unsat = cnn_twins
    opts = VerifyOptions(attack=False)
    assert _milp_first(sat.views, opts)
    res = verify(sat.views.network, sat.prop, sat.onnx_eval, 30.0, opts, views=sat.views)
    assert res.status is Status.FALSIFIED and res.counterexample.confirmed
    assert dict(res.stats).get("milp_s", 0.0) > 0.0
    assert "graph_bab_s" not in dict(res.stats)
    res = verify(unsat.views.network, unsat.prop, unsat.onnx_eval, 30.0, opts,
                 views=unsat.views)
    assert res.status is Status.VERIFIED


def test_the_gate(cnn_twins) -> None:
    sat, _ = cnn_twins
    assert not _milp_first(sat.views, VerifyOptions(milp_first_units=0))
    assert not _milp_first(sat.views, VerifyOptions(milp_first_units=10))
    n = sat.views.network.n_inputs
    assert _milp_first(sat.views, VerifyOptions(milp_first_inputs=n))
    assert not _milp_first(sat.views, VerifyOptions(milp_first_inputs=n - 1))  # image-sized
    sig, _ = (_subject(i) for i in instance_pair("sigmoid", 0, 1))
    assert not _milp_first(sig.views, VerifyOptions())  # Sigmoid: no exact MILP
    opts = VerifyOptions(attack=False, milp_first_units=0)
    res = verify(sat.views.network, sat.prop, sat.onnx_eval, 2.0, opts, views=sat.views)
    assert "milp_s" not in dict(res.stats)
