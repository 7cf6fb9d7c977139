"""``verinet selftest`` on the command line: table, outputs, exit codes."""

from __future__ import annotations

import csv
import json

import pytest

from verinet.cli import main
from verinet.selftest.engines import ENGINES, Answer


def test_selftest_writes_json_csv_and_instances(tmp_path, capsys) -> None:
    out, table, save = tmp_path / "st.json", tmp_path / "st.csv", tmp_path / "inst"
    save.mkdir()
    code = main(["selftest", "--instances", "2", "--engines", "crown,milp", "--timeout", "5",
                 "--out", str(out), "--csv", str(table), "--save", str(save)])
    assert code == 0
    text = capsys.readouterr().out
    assert "[1/2] mlp-0-bump" in text and "[2/2] mlp-0-bump-low" in text
    assert "engine" in text and "sat found" in text
    rep = json.loads(out.read_text())
    assert rep["instances"] == 2 and len(rep["outcomes"]) == 4
    milp = next(e for e in rep["engines"] if e["engine"] == "milp")
    assert (milp["right"], milp["wrong"], milp["sat_found"]) == (2, 0, 1)
    rows = list(csv.DictReader(table.open()))
    assert {(r["instance"], r["engine"]) for r in rows} == {
        (i, e) for i in ("mlp-0-bump", "mlp-0-bump-low") for e in ("crown", "milp")}
    assert sorted(p.name for p in save.iterdir()) == [
        "mlp-0-bump-low.onnx", "mlp-0-bump-low.vnnlib", "mlp-0-bump.onnx", "mlp-0-bump.vnnlib"]


def test_a_wrong_answer_exits_70(monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.setitem(ENGINES, "liar", lambda s, t: Answer("unsat", 0.0))
    out = tmp_path / "st.json"
    code = main(["selftest", "--instances", "2", "--engines", "liar", "--out", str(out)])
    assert code == 70
    cap = capsys.readouterr()
    assert "WRONG: liar" in cap.out
    assert "1 wrong answer(s): a soundness bug" in cap.err
    assert json.loads(out.read_text())["engines"][0]["wrong"] == 1


def test_a_crash_exits_1(monkeypatch, capsys) -> None:
    def crash(s, t):
        raise RuntimeError("boom")

    monkeypatch.setitem(ENGINES, "crashy", crash)
    assert main(["selftest", "--instances", "2", "--engines", "crashy"]) == 1
    assert "engine crash(es)" in capsys.readouterr().err


def test_usage_errors_are_one_line(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit, match="2"):
        main(["selftest", "--engines", "nope"])
    err = capsys.readouterr().err.strip()
    assert "unknown engine(s) nope" in err and len(err.splitlines()) == 1
    assert main(["selftest", "--out", str(tmp_path / "missing" / "st.json")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["selftest", "--instances", "0"]) == 2
    assert "--instances must be at least 1" in capsys.readouterr().err
    assert main(["selftest", "--save", str(tmp_path / "nowhere")]) == 2
    assert "not an existing directory" in capsys.readouterr().err
