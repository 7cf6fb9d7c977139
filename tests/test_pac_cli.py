"""``verinet pac`` and ``verinet certify --pac`` end to end on the bundled example, the
report's PAC section, and bad input (one line, exit 2)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from tests.test_report_certify import _check_schema
from verinet.cli import main
from verinet.report.certify import read_json, report_to_dict

FAST = ["--epsilon", "0.1", "--eta", "0.01", "--k1", "300", "--k2", "400"]


def _one_line_error(capsys: pytest.CaptureFixture[str], rc: int) -> str:
    err = [e for e in capsys.readouterr().err.strip().splitlines()
           if not e.startswith("WARNING")]
    assert rc == 2, err
    assert len(err) == 1 and err[0].startswith("verinet: error:"), err
    return err[0]


def test_pac_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, table, fig = tmp_path / "r.json", tmp_path / "r.csv", tmp_path / "r.png"
    rc = main(["pac", "--eps", "0.03", "--radius", "--samples", "3", "--grid", "0.02",
               *FAST, "--out", str(out), "--csv", str(table), "--plot", str(fig),
               "--no-progress"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "DeepPAC (error rate 0.1, significance 0.01; K1 300, K2 400, K3 113" in text
    assert "PAC radii are estimates, not bounds" in text
    d = json.loads(out.read_text())
    _check_schema(d)
    assert d["settings"]["method"] == "deeppac" and d["settings"]["k3"] == 113
    assert d["summary"]["verified"] == 0  # PAC never counts as certified
    for s in d["samples"]:
        r = s["radius"]
        assert r["lower"] == 0.0 and r["lower_by"] == "none"
        p = r["pac"]
        assert p["guarantee"] == "pac" and (p["epsilon"], p["eta"]) == (0.1, 0.01)
        assert (p["k1"], p["k2"], p["k3"]) == (300, 400, 113) and p["grid"] == 0.02
        assert p["value"] is not None and p["value"] == p["grid_value"]
        assert p["at_eps"]["radius"] == 0.03
        robust = [c for c in p["checks"] if c["verdict"] == "pac-robust"]
        if p["value"] > 0:
            assert any(c["radius"] == p["value"] for c in robust)
        for c in p["checks"] + [p["at_eps"]]:
            if c["verdict"] == "unsafe":  # a replayed counterexample inside the ball
                x = np.array(c["counterexample"]["x"])
                assert c["counterexample"]["distance"] <= c["radius"]
                assert r["upper"] is not None and r["upper"] <= c["counterexample"]["distance"]
                assert x.min() >= 0 and x.max() <= 1
        assert s["status"] in ("unknown", "falsified")
    assert set(d["pac"]) == {"n", "inside", "above_upper", "below_lower", "at_eps"}
    assert sum(d["pac"]["at_eps"].values()) == 3
    rows = list(csv.DictReader(table.open()))
    assert len(rows) == 3 and all(float(row["pac"]) >= 0 for row in rows)
    assert fig.stat().st_size > 1000
    assert report_to_dict(read_json(out)) == d  # PAC records survive the round trip


def test_pac_eps_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.json"
    assert main(["pac", "--eps", "0.3", "--samples", "2", *FAST, "--dtype", "float64",
                 "--out", str(out), "--no-progress"]) == 0
    d = json.loads(out.read_text())
    _check_schema(d)
    for s in d["samples"]:
        p = s["radius"]["pac"]
        assert p["value"] is None and p["checks"] == [] and p["at_eps"]["radius"] == 0.3
        if p["at_eps"]["verdict"] == "unsafe":
            assert s["status"] == "falsified" and s["witness"]["method"].startswith("pac-")
    assert "PAC-robust" in capsys.readouterr().out


def test_certify_with_pac(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, fig = tmp_path / "r.json", tmp_path / "r.png"
    rc = main(["certify", "--eps", "0.03", "--radius", "--samples", "1", "--timeout", "3",
               "--pac", "--pac-epsilon", "0.1", "--pac-eta", "0.01", "--pac-k1", "300",
               "--pac-k2", "400", "--pac-grid", "0.02", "--out", str(out), "--plot", str(fig),
               "--no-progress"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "PAC vs sandwich" in text and " pac " in text.splitlines()[0] + " "
    d = json.loads(out.read_text())
    _check_schema(d)
    assert d["settings"]["pac"]["k2"] == 400
    for s in d["samples"]:
        r = s["radius"]
        assert r["pac"]["value"] is not None and r["lower_guarantee"] != "pac"
        assert "pac" in s["timings"]
    c = d["pac"]
    assert c["n"] == c["inside"] + c["above_upper"] + c["below_lower"] == 1


@pytest.mark.parametrize(("args", "match"), [
    (["--eps", "0.1", "--epsilon", "0"], r"epsilon \(error rate\) must lie in \(0, 1\)"),
    (["--eps", "0.1", "--eta", "1"], r"eta \(significance\) must lie in \(0, 1\)"),
    (["--eps", "0.1", "--k2", "100"], "k2 = 100 samples are too few"),
    (["--eps", "0.1", "--k3", "10"], "k3 = 10 samples are too few"),
    (["--eps", "0.1", "--kappa", "-2"], "kappa must be an integer >= 0"),
    (["--radius", "--grid", "0"], "grid step must lie in"),
    (["--eps", "2"], "eps must be finite and in"),
    (["--data", "missing.csv"], "give --eps E, --radius, or both"),
], ids=repr)
def test_bad_input_is_one_line(args: list[str], match: str,
                               capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["pac", *args, "--samples", "1", "--no-progress"])
    assert re.search(match, _one_line_error(capsys, rc))


def test_certify_pac_bad_option(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["certify", "--eps", "0.03", "--samples", "1", "--pac", "--pac-eta", "0",
               "--no-progress"])
    assert "eta (significance) must lie in (0, 1)" in _one_line_error(capsys, rc)
