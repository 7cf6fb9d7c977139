"""``verinet certify`` end to end on the bundled example, and its bad-input handling."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from tests.test_report_certify import _check_schema
from verinet import examples
from verinet.cli import main


def _one_line_error(capsys: pytest.CaptureFixture[str], code: int, rc: int) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    err = [e for e in err if not e.startswith("WARNING")]
    assert rc == code, err
    assert len(err) == 1 and err[0].startswith("verinet: error:"), err
    assert "Traceback" not in err[0]
    return err[0]


def test_bundled_example_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, table, fig = tmp_path / "r.json", tmp_path / "r.csv", tmp_path / "r.png"
    rc = main(["certify", "--eps", "0.03", "--radius", "--samples", "4", "--timeout", "15",
               "--out", str(out), "--csv", str(table), "--plot", str(fig), "--no-progress"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "clean accuracy" in text and "certified robust" in text
    d = json.loads(out.read_text())
    _check_schema(d)
    assert len(d["samples"]) == 4
    for s in d["samples"]:
        r = s["radius"]
        assert r is not None and r["lower"] <= (r["upper"] if r["upper"] is not None else 1e9)
        assert s["status"] in ("verified", "falsified", "unknown", "misclassified")
    rows = list(csv.DictReader(table.open()))
    assert len(rows) == 4
    assert fig.stat().st_size > 1000


def test_model_and_data_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = np.load(examples.data_path())
    p = tmp_path / "d.csv"
    rows = np.hstack([data["y"][:2, None], np.round(data["x"][:2] * 16)])
    np.savetxt(p, rows, delimiter=",", fmt="%d")
    out = tmp_path / "r.json"
    rc = main(["certify", str(examples.model_path()), "--data", str(p), "--scale", "16",
               "--eps", "0.02", "--timeout", "10", "--out", str(out), "--no-progress"])
    assert rc == 0
    d = json.loads(out.read_text())
    assert [s["index"] for s in d["samples"]] == [0, 1]
    assert d["eps"] == 0.02


def _npz(tmp_path: Path, x: np.ndarray, y: np.ndarray) -> Path:
    p = tmp_path / "bad.npz"
    np.savez(p, x=x, y=y)
    return p


@pytest.mark.parametrize("case", ["shape", "label", "nan", "neg-eps", "big-eps", "missing",
                                  "no-eps"], ids=repr)
def test_bad_input_is_one_line_and_keeps_results(case: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    good = np.load(examples.data_path())
    x, y = good["x"][:2].astype(np.float64), good["y"][:2]
    out = tmp_path / "r.json"
    out.write_text('{"previous": "results"}')
    eps = ["--eps", "0.02"]
    if case == "shape":
        data = _npz(tmp_path, x[:, :10], y)
    elif case == "label":
        data = _npz(tmp_path, x, np.array([3, 12]))
    elif case == "nan":
        x[1, 5] = np.nan
        data = _npz(tmp_path, x, y)
    else:
        data = _npz(tmp_path, x, y)
    if case == "neg-eps":
        eps = ["--eps", "-0.1"]
    if case == "big-eps":
        eps = ["--eps", "1.5"]
    if case == "missing":
        data = tmp_path / "nope.npz"
    if case == "no-eps":
        eps = []
    rc = main(["certify", str(examples.model_path()), "--data", str(data), *eps,
               "--out", str(out), "--no-progress"])
    _one_line_error(capsys, 2, rc)
    assert json.loads(out.read_text()) == {"previous": "results"}


def _sample_2_raises(monkeypatch: pytest.MonkeyPatch, error: Exception, out: Path) -> int:
    """``certify`` of 4 bundled samples in this process, the third raising ``error``."""
    import verinet.runs.sample as R

    real = R.certify_sample

    def failing(network, onnx_eval, index, *args, **kwargs):
        if index == 2:
            raise error
        return real(network, onnx_eval, index, *args, **kwargs)

    monkeypatch.setattr(R, "certify_sample", failing)
    return main(["certify", "--eps", "0.02", "--samples", "4", "--timeout", "5", "--jobs", "1",
                 "--out", str(out), "--no-progress"])


def test_a_failing_sample_is_recorded_as_error_and_the_run_goes_on(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "r.json"
    assert _sample_2_raises(monkeypatch, RuntimeError("solver crashed"), out) == 0
    stdout = capsys.readouterr().out
    assert "errors             1 sample(s) failed" in stdout
    d = json.loads(out.read_text())
    assert [s["index"] for s in d["samples"]] == [0, 1, 2, 3]
    bad = d["samples"][2]
    assert (bad["status"], bad["reason"], bad["radius"]) == ("error", "error", None)
    assert bad["message"] == "RuntimeError: solver crashed"
    assert d["summary"]["errors"] == 1


def test_a_soundness_error_stops_the_run_and_keeps_finished_samples(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from verinet.types import SoundnessError

    out = tmp_path / "r.json"  # a bug is never a record
    assert _sample_2_raises(monkeypatch, SoundnessError("lower bound above the witness"),
                            out) == 70
    assert "lower bound above the witness" in capsys.readouterr().err
    d = json.loads(out.read_text())
    assert [s["index"] for s in d["samples"]] == [0, 1]


def test_clever_next_to_the_sandwich(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.json"
    rc = main(["certify", "--eps", "0.03", "--samples", "3", "--timeout", "5", "--clever",
               "--clever-batches", "6", "--clever-batch-size", "32", "--attacks", "fmn",
               "--out", str(out), "--no-progress"])
    assert rc == 0
    assert "CLEVER (L-inf, an estimate" in capsys.readouterr().out
    d = json.loads(out.read_text())
    _check_schema(d)
    for s in d["samples"]:
        if s["status"] == "misclassified":
            assert "clever" not in s
            continue
        c, r = s["clever"], s["radius"]
        assert c["guarantee"] == "estimate" and 0 <= c["score"] <= c["sampling_radius"]
        upper = None if r is None else r["upper"]
        assert c["exceeds_upper"] == (None if upper is None else c["score"] > upper)
    from verinet.report.certify import read_json

    back = read_json(out)
    assert [s.clever is not None for s in back.samples] == ["clever" in s for s in d["samples"]]


# ----------------------------------------------------------------------------- data layout

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)  # CIFAR-10, per channel


def _nchw_linear(tmp_path: Path, w: np.ndarray) -> Path:
    """An ONNX model on a (1, 3, 2, 2) input: Flatten (channel, row, col), then x @ w.T."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Flatten", ["x"], ["f"], axis=1),
         helper.make_node("Gemm", ["f", "w", "b"], ["y"], transB=1)], "nchw",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, w.shape[0]])],
        [numpy_helper.from_array(w.astype(np.float32), "w"),
         numpy_helper.from_array(np.zeros(w.shape[0], np.float32), "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    p = tmp_path / "nchw.onnx"
    onnx.save(model, p)
    return p


def _hwc_data(tmp_path: Path) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    """Pixel images (0..255) stored as CSV rows in (row, col, channel) order, labelled with
    the model's class on the CHW-ordered, per-channel normalised image."""
    rng = np.random.default_rng(3)
    w = rng.normal(size=(4, 12))
    chw = rng.integers(0, 256, size=(12, 3, 2, 2))
    norm = (chw / 255 - np.array(MEAN)[:, None, None]) / np.array(STD)[:, None, None]
    y = (norm.reshape(12, -1) @ w.T).argmax(axis=1)
    hwc = chw.transpose(0, 2, 3, 1).reshape(12, -1)
    # read without the transposition, some images get another class
    wrong = ((hwc.reshape(12, 3, 2, 2) / 255 - np.array(MEAN)[:, None, None])
             / np.array(STD)[:, None, None]).reshape(12, -1) @ w.T
    assert (wrong.argmax(axis=1) != y).any()
    data = tmp_path / "hwc.csv"
    np.savetxt(data, np.column_stack([y, hwc]), delimiter=",", fmt="%d")
    return _nchw_linear(tmp_path, w), data, y, wrong.argmax(axis=1) == y


def test_hwc_layout_and_per_channel_normalisation(tmp_path: Path) -> None:
    model, data, _, agree = _hwc_data(tmp_path)
    norm = ["--mean", ",".join(map(str, MEAN)), "--std", ",".join(map(str, STD))]
    status = {}
    for layout in ("hwc", "chw"):
        out = tmp_path / f"{layout}.json"
        rc = main(["certify", str(model), "--data", str(data), "--scale", "255", *norm,
                   "--layout", layout, "--eps", "0.001", "--timeout", "5", "--attacks", "fmn",
                   "--out", str(out), "--no-progress"])
        assert rc == 0
        d = json.loads(out.read_text())
        _check_schema(d)
        status[layout] = [s["status"] == "misclassified" for s in d["samples"]]
    assert not any(status["hwc"])  # every label is the model's class on the CHW image
    assert status["chw"] == list(~agree)  # the stored order misreads the others


@pytest.mark.parametrize("command", ["certify", "pac", "clever", "roby", "study"])
def test_hwc_layout_needs_an_nchw_model(command: str, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Every command that reads samples takes --layout; a flat (1, 64) model is refused."""
    extra = {"certify": ["--eps", "0.02"], "pac": ["--eps", "0.02"]}.get(command, [])
    rc = main([command, str(examples.model_path()), "--data", str(examples.data_path()),
               "--layout", "hwc", *extra])
    line = _one_line_error(capsys, 2, rc)
    assert "needs a model with a rank-4 NCHW input (1, C, H, W), this one takes (1, 64)" in line


def test_hwc_layout_size_mismatch_and_bad_choice(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    model, data, _, _ = _hwc_data(tmp_path)
    short = tmp_path / "short.csv"
    short.write_text("0," + ",".join(["1"] * 11) + "\n")
    rc = main(["roby", str(model), "--data", str(short), "--scale", "255", "--layout", "hwc"])
    line = _one_line_error(capsys, 2, rc)
    assert "samples have 11 input values but the model has 12 inputs" in line
    with pytest.raises(SystemExit, match="2"):
        main(["roby", str(model), "--data", str(data), "--layout", "nhwc"])
    assert "invalid choice: 'nhwc'" in capsys.readouterr().err
