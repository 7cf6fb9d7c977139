"""Opt-in (``pytest -m slow``): shared VNN-COMP instances end to end through the API.

A wrong verdict fails the test; unknown/timeout is allowed (speed is measured by
``benchmarks/vnncomp.py``, not here).  Every sat verdict's witness is re-checked here
against the manifest's expectation and the property.
"""

import csv
from pathlib import Path

import pytest

from verinet import api
from verinet.types import Status

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "vnncomp"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not SHARED.is_dir(), reason="shared VNN-COMP instances absent"),
]


def _rows():
    if not SHARED.is_dir():
        return []
    with (SHARED / "manifest.csv").open() as f:
        return [r for r in csv.DictReader(f)
                if r["benchmark"] in ("acasxu", "mnist_fc_2022", "mnistfc_2021")
                and float(r["abcrown_time_s"] or 1e9) < 5.0]


@pytest.mark.parametrize("row", _rows(), ids=lambda r: r["id"])
def test_no_wrong_verdict(row):
    prop = api.read_property(SHARED / row["vnnlib"])
    model = api.load_model(SHARED / row["onnx"], input_box=prop.terms[0].box)
    res = api.verify(model, prop, timeout=30.0)
    if res.status is Status.VERIFIED:
        assert row["expected"] == "unsat", res
    if res.status is Status.FALSIFIED:
        assert row["expected"] == "sat", res
        cex = res.counterexample
        term = prop.terms[cex.term]
        assert term.box.contains(cex.x)
        assert term.unsafe.violation(model.network.evaluate(cex.x)) <= 0
        assert term.unsafe.violation(model.onnx_eval(cex.x[None])[0]) <= 0
