"""``verinet smooth`` end to end on a tiny noise-trained model, its reports, and bad
input (one line, exit 2)."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from tests.smoothing.models import blobs, trained_blobs
from verinet.cli import main, parse_args
from verinet.report import smoothing as rep_mod
from verinet.smoothing import SmoothingOptions, run_smoothing
from verinet.train import mlp_to_onnx, save_onnx
from verinet.types import InputError

FAST = ["--sigma", "0.12", "--n0", "20", "--n", "500"]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    d = tmp_path_factory.mktemp("smooth")
    model, _ = trained_blobs(0.12)
    onnx_path = save_onnx(mlp_to_onnx(model), d / "blobs.onnx")
    x, y = blobs(8, 21)
    np.savez(d / "blobs.npz", x=x, y=y)
    return str(onnx_path), str(d / "blobs.npz")


def _rc(argv: Sequence[str]) -> int:
    """The exit code, also of a usage error (argparse exits from parse_args)."""
    try:
        return main(list(argv))
    except SystemExit as e:
        return int(e.code or 0)


def _one_line_error(capsys: pytest.CaptureFixture[str], rc: int) -> str:
    err = [e for e in capsys.readouterr().err.strip().splitlines()
           if not e.startswith("WARNING")]
    assert rc == 2, err
    assert len(err) == 1 and err[0].startswith("verinet"), err
    return err[0]


def test_smooth_end_to_end(files: tuple[str, str], tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    model, data = files
    out, table, fig = tmp_path / "r.json", tmp_path / "r.csv", tmp_path / "r.png"
    rc = main(["smooth", model, "--data", data, *FAST, "--samples", "6", "--start", "1",
               "--out", str(out), "--csv", str(table), "--plot", str(fig),
               "--radii", "0 0.1 0.2"])
    text = capsys.readouterr().out
    assert rc == 0
    assert "not the base network" in text and "certified accuracy" in text
    d = json.loads(out.read_text())
    assert d["mode"] == "certify" and d["guarantee"]["kind"] == "probabilistic"
    assert d["guarantee"]["confidence"] == pytest.approx(0.999)
    assert d["guarantee"]["of"] == "smoothed classifier"
    assert d["options"]["sigma"] == 0.12 and d["options"]["clip"] is None
    assert [s["index"] for s in d["samples"]] == [1, 2, 3, 4, 5, 6]
    assert d["summary"]["certified_accuracy"]["radius"] == [0.0, 0.1, 0.2]
    assert d["summary"]["correct"] >= 5
    curve = d["curve"]
    assert curve["radius"][0] == 0.0 and curve["certified_accuracy"][0] == pytest.approx(
        d["summary"]["correct"] / 6)
    assert all(a >= b for a, b in zip(curve["certified_accuracy"],
                                      curve["certified_accuracy"][1:], strict=False))
    for s in d["samples"]:
        assert (s["radius"] is None) == s["abstained"]
    rows = list(csv.DictReader(table.open()))
    assert [int(r["index"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert tuple(rows[0]) == rep_mod.CERTIFY_COLUMNS
    assert fig.read_bytes()[:4] == b"\x89PNG"
    # reproducible: the same command gives the same samples (timings aside)
    again = tmp_path / "again.json"
    assert main(["smooth", model, "--data", data, *FAST, "--samples", "6", "--start", "1",
                 "--out", str(again)]) == 0
    strip = [{k: v for k, v in s.items() if k != "seconds"} for s in d["samples"]]
    assert strip == [{k: v for k, v in s.items() if k != "seconds"}
                     for s in json.loads(again.read_text())["samples"]]


def test_smooth_predict(files: tuple[str, str], tmp_path: Path,
                        capsys: pytest.CaptureFixture[str]) -> None:
    model, data = files
    out, table = tmp_path / "p.json", tmp_path / "p.csv"
    assert main(["smooth", model, "--data", data, *FAST, "--predict", "--out", str(out),
                 "--csv", str(table), "--batch", "64"]) == 0
    assert "PREDICT (n 500)" in capsys.readouterr().out
    d = json.loads(out.read_text())
    assert d["mode"] == "predict" and "curve" not in d and len(d["samples"]) == 8
    assert all(len(s["top"]) == 2 and s["p_value"] <= 1 for s in d["samples"])
    assert tuple(next(csv.reader(table.open()))) == rep_mod.PREDICT_COLUMNS


@pytest.mark.parametrize("extra,match", [
    (["--sigma", "-1"], "sigma must be a positive finite number"),
    (["--sigma", "0"], "sigma must be a positive finite number"),
    (["--sigma", "nan"], "sigma must be a positive finite number"),
    (["--sigma", "0.1", "--alpha", "0"], r"alpha must lie in \(0, 1\)"),
    (["--sigma", "0.1", "--alpha", "1.5"], r"alpha must lie in \(0, 1\)"),
    (["--sigma", "0.1", "--n0", "0"], "n0 must be an integer >= 1"),
    (["--sigma", "0.1", "--n", "0", "--n0", "0"], "n0 must be an integer >= 1"),
    (["--sigma", "0.1", "--n", "50", "--n0", "100"], r"n \(50\) must be at least n0"),
    (["--sigma", "0.1", "--batch", "0"], "batch must be an integer >= 1"),
    (["--sigma", "0.1", "--clip", "0 0.5 1"], "--clip takes two numbers"),
    (["--sigma", "0.1", "--radii", "-1"], "--radii must be >= 0"),
    (["--sigma", "0.1", "--predict", "--plot", "x.png"], "drop --predict or --plot"),
    (["--sigma", "x"], "not a number"),
    (["--n", "100"], "the following arguments are required: --sigma"),
], ids=repr)
def test_bad_input_is_one_line_exit_2(files: tuple[str, str], extra: list[str], match: str,
                                      capsys: pytest.CaptureFixture[str],
                                      tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    model, data = files
    line = _one_line_error(capsys, _rc(["smooth", model, "--data", data, *extra]))
    assert re.search(match, line), line


def test_missing_files_and_bad_outputs(files: tuple[str, str], tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    model, data = files
    line = _one_line_error(capsys, main(["smooth", str(tmp_path / "no.onnx"), "--data", data,
                                         *FAST]))
    assert "model file not found" in line
    line = _one_line_error(capsys, main(["smooth", model, "--data", str(tmp_path / "no.npz"),
                                         *FAST]))
    assert "no.npz" in line
    line = _one_line_error(capsys, main(["smooth", model, *FAST]))
    assert "--data FILE is required" in line
    line = _one_line_error(capsys, main(["smooth", model, "--data", data, *FAST, "--out",
                                         str(tmp_path / "nodir" / "r.json")]))
    assert "does not exist" in line


def test_parse_args_defaults() -> None:
    a = parse_args(["smooth", "m.onnx", "--sigma", "0.25", "--data", "d.npz"])
    assert (a.n0, a.n, a.alpha, a.batch, a.seed, a.predict, a.clip) == (
        100, 10_000, 0.001, 1000, 0, False, None)


def test_report_writers_and_plot_guard(tmp_path: Path) -> None:
    x, y = blobs(3, 2)
    _, net = trained_blobs(0.12)
    rep = run_smoothing(net, x, y, SmoothingOptions(sigma=0.12, n0=10, n=100),
                        mode="predict")
    assert "PREDICT" in rep_mod.format_table(rep)
    with pytest.raises(InputError, match="needs CERTIFY results"):
        rep_mod.plot_curve(rep, tmp_path / "p.png")
    d = json.loads(rep_mod.format_json(rep))
    assert d["method"].startswith("randomized smoothing") and d["summary"]["n"] == 3


def test_interrupt_writes_the_finished_samples(files: tuple[str, str], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    model, data = files
    real = rep_mod.format_row
    calls: list[int] = []

    def row(s):  # Ctrl-C while the third sample's row is printed
        calls.append(s.index)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(s)

    monkeypatch.setattr(rep_mod, "format_row", row)
    out = tmp_path / "r.json"
    assert main(["smooth", model, "--data", data, *FAST, "--out", str(out)]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert [s["index"] for s in json.loads(out.read_text())["samples"]] == [0, 1, 2]
