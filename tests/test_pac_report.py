"""DeepPAC in certify reports: the comparison with the sandwiches, JSON (schema, round
trip), table and plot, and PAC counterexamples tightening the attack upper bound."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import verinet.report.certify as rc
from tests.nets import relu_network, relu_onnx
from tests.test_report_certify import _check_schema
from verinet.certify.engine import CertifyOptions
from verinet.certify.result import CertifyReport, PacComparison, SampleReport, SampleStatus
from verinet.onnx_import.check import onnx_evaluator
from verinet.pac import FeatureMap, PacCheck, PacOptions, PacRecord, PacVerdict, RadiusSearch
from verinet.pac.run import PacRun
from verinet.runs.sample import with_pac
from verinet.types import Counterexample, Reason, Sandwich, SoundnessError

OPTS = PacOptions(epsilon=0.1, eta=0.01, k1=300, k2=400)
COUNTS = OPTS.counts(4)


def _record(radius: float | None, unsafe_at: float | None = None,
            at_eps: PacVerdict | None = None) -> PacRecord:
    checks = [] if radius is None or radius == 0 else [
        PacCheck(radius, PacVerdict.ROBUST, 0.01, -0.2, 1, COUNTS, seconds=0.5)]
    if unsafe_at is not None:
        cex = Counterexample(np.full(4, 0.5 + unsafe_at), np.array([0.0, 1.0]),
                             np.array([0.0, 1.0]), confirmed=True)
        checks.append(PacCheck(unsafe_at * 1.5, PacVerdict.UNSAFE, 0.02, 0.3, 1, COUNTS, cex,
                               "vertex", unsafe_at, 0.5))
    eps_check = None
    if at_eps is PacVerdict.ROBUST:
        eps_check = PacCheck(0.03, at_eps, 0.01, -0.1, 1, COUNTS)
    elif at_eps is PacVerdict.UNKNOWN:
        eps_check = PacCheck(0.03, at_eps, 0.01, 0.1, 1, COUNTS)
    return PacRecord(0.1, 0.01, COUNTS, "lstsq", 0, radius, 0.01, radius, False, None,
                     eps_check, tuple(checks), 1.0)


def _sample(i: int, lo: float, hi: float, pac: PacRecord | None, label: int = 0,
            predicted: int = 0) -> SampleReport:
    status = SampleStatus.UNKNOWN if label == predicted else SampleStatus.MISCLASSIFIED
    return SampleReport(i, label, predicted, status, Reason.TIMEOUT, 0.03,
                        Sandwich(lo, hi, "crown", "pgd"), pac=pac)


def _report() -> CertifyReport:
    s = (_sample(0, 0.02, 0.05, _record(0.04, at_eps=PacVerdict.ROBUST)),   # inside
         _sample(1, 0.02, 0.05, _record(0.06, unsafe_at=0.08,
                                        at_eps=PacVerdict.UNKNOWN)),       # above
         _sample(2, 0.05, math.inf, _record(0.03)),                        # below
         _sample(3, 0.01, 0.02, _record(0.02)),                            # inside (tie)
         _sample(4, 0.0, 0.0, None, predicted=1),                          # misclassified
         _sample(5, 0.01, 0.2, _record(None)))                             # no search
    return CertifyReport("m.onnx", "d.csv", s, 0.03, 1e-3, 0, (("pac", {"k1": 300}),), 2.0)


def test_comparison_counts() -> None:
    c = _report().pac_comparison()
    assert c == PacComparison(4, 2, 1, 1, 1, 0, 1)
    assert CertifyReport("m", "d", (_sample(0, 0.0, 1.0, None),)).pac_comparison() is None


def test_json_schema_round_trip_table(tmp_path: Path) -> None:
    report = _report()
    p = tmp_path / "r.json"
    rc.write_json(report, p)
    d = json.loads(p.read_text())
    _check_schema(d)
    assert d["pac"] == {"n": 4, "inside": 2, "above_upper": 1, "below_lower": 1,
                        "at_eps": {"pac_robust": 1, "unsafe": 0, "unknown": 1}}
    pac = d["samples"][1]["radius"]["pac"]
    assert pac["value"] == 0.06 and pac["guarantee"] == "pac" and pac["kappa"] == 5
    assert pac["checks"][1]["counterexample"]["distance"] == 0.08
    assert "pac" not in d["samples"][4]["radius"] and d["summary"]["verified"] == 0
    assert rc.report_to_dict(rc.read_json(p)) == d
    text = rc.format_table(report)
    assert text.splitlines()[0].split()[7] == "pac"
    assert "PAC vs sandwich  inside [lower, upper] 2/4 = 50.0%, above upper 1/4 = 25.0%, " \
        "below lower 1/4 = 25.0%" in text
    assert "at eps           PAC-robust 1, unsafe 0, unknown 1" in text
    rows = rc.format_csv(report).splitlines()
    assert rows[0].endswith(",pac,pac_at_eps,lipschitz")
    assert rows[1].endswith(",0.04,pac-robust,")


def test_plot_with_pac(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from verinet.report.plots import plot_report

    plot_report(_report(), tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_pac_counterexample_below_the_certified_radius_is_a_bug() -> None:
    with pytest.raises(SoundnessError, match="PAC counterexample at distance 0.08 lies below"):
        _sample(0, 0.1, 0.2, _record(0.05, unsafe_at=0.08))


def _affine_problem():
    """``f(x) = (x_0, x_1)``: label 0 at x0, exact radius 0.1."""
    layers = [(np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]]), np.zeros(2))]
    net = relu_network(layers)
    x0 = np.array([0.6, 0.4, 0.5, 0.5])
    return net, onnx_evaluator(relu_onnx(layers)), x0, 0


def test_pac_counterexample_tightens_the_upper_bound() -> None:
    net, onnx_eval, x0, label = _affine_problem()
    # A sandwich the attacks left open: [0, inf).
    rep = SampleReport(0, label, label, SampleStatus.UNKNOWN, Reason.TIMEOUT, 1.0,
                       Sandwich(0.0, math.inf, "none", ""))
    run = PacRun(OPTS, FeatureMap.identity(4), RadiusSearch(grid=0.05))
    out = with_pac(net, onnx_eval, rep, x0, CertifyOptions(eps=1.0, timeout=5.0), run)
    assert out.pac is not None and out.pac.radius is not None
    closest = out.pac.counterexample
    assert closest is not None  # the affine model is unsafe beyond its radius
    assert out.witness is not None and out.witness.method in ("pac-vertex", "pac-sample")
    assert out.radius is not None and out.radius.upper == out.witness.distance
    assert 0.1 - 1e-7 <= out.radius.upper <= closest.distance + 1e-7
    assert out.pac.radius == pytest.approx(0.05)  # grid 0.05 below the exact radius 0.1
    assert out.status is SampleStatus.FALSIFIED
    assert (out.witness.method, out.witness.distance) in out.attacks
    y = net.evaluate(out.witness.x)
    assert np.delete(y, label).max() >= y[label]
    assert "tightened the upper bound" in out.message and dict(out.timings)["pac"] > 0
    # A closer attack witness is kept.
    near = SampleReport(0, label, label, SampleStatus.NOT_ASKED, Reason.NONE, None,
                        Sandwich(0.0, 1e-9, "none", "pgd"))
    kept = with_pac(net, onnx_eval, near, x0, CertifyOptions(radius=True), run)
    assert kept.radius == near.radius and kept.pac is not None
