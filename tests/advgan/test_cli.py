"""``verinet advgan train`` and ``verinet advgan attack`` end to end, and their errors:
one line on stderr, the documented exit code, no traceback."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.advgan.helpers import flat_net, points, write_onnx
from verinet.cli import main

TRAIN = ["--epochs", "30", "--kappa", "3", "--width", "64", "--seed", "1"]


@pytest.fixture
def files(tmp_path: Path) -> tuple[str, str, str]:
    model = write_onnx(tmp_path / "net.onnx")
    x, y = points(flat_net(), 300, 1)
    np.savez(tmp_path / "train.npz", x=x, y=y)
    xt, yt = points(flat_net(), 60, 2)
    np.savez(tmp_path / "test.npz", x=xt, y=yt)
    return str(model), str(tmp_path / "train.npz"), str(tmp_path / "test.npz")


def test_train_then_attack(files, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model, train, test = files
    gen = tmp_path / "gen.pt"
    assert main(["advgan", "train", model, "--data", train, "--eps", "0.3", "--out", str(gen),
                 *TRAIN]) == 0
    out = capsys.readouterr().out
    assert "trained a mlp generator (width 64, eps 0.3) on 300 samples" in out and gen.is_file()
    report = tmp_path / "r.json"
    assert main(["advgan", "attack", model, "--generator", str(gen), "--data", test,
                 "--out", str(report)]) == 0
    line = capsys.readouterr().out
    assert "60 samples, 60 correctly classified" in line and "confirmed on the IR and" in line
    d = json.loads(report.read_text())
    s = d["summary"]
    assert s["eps"] == 0.3 and s["n"] == 60 and s["onnx_checked"] is True
    assert s["confirmed"] <= s["success_ir"] and s["success_rate"] == s["confirmed"] / 60
    assert s["success_rate"] >= 0.6 and f"success rate {s['success_rate']:.1%}" in line
    assert d["guarantee"] == "empirical" and d["trained_on"] == "net.onnx"
    assert sum(r["confirmed"] for r in d["samples"]) == s["confirmed"]
    assert all(r["linf"] <= 0.3 for r in d["samples"] if r["confirmed"])
    # --eps, when given, must be the generator's; another model is a transfer (a warning)
    assert main(["advgan", "attack", model, "--generator", str(gen), "--data", test,
                 "--eps", "0.3", "--samples", "5"]) == 0
    assert "5 samples" in capsys.readouterr().out


def test_the_bundled_example_trains_and_attacks(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    gen = tmp_path / "g.pt"
    assert main(["advgan", "train", "--eps", "0.2", "--out", str(gen), "--epochs", "2"]) == 0
    assert main(["advgan", "attack", "--generator", str(gen), "--samples", "10"]) == 0
    assert "10 samples" in capsys.readouterr().out


def _error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    return err


@pytest.mark.parametrize("case, code, message", [
    ("eps0", 2, "--eps: must be a positive finite number"),
    ("eps2", 2, "eps must be finite and in [0, 1]"),
    ("no_out", 2, "the following arguments are required: --out"),
    ("out_dir", 2, "does not exist"),
    ("conv", 2, "a conv generator needs an image input"),
    ("epochs", 2, "epochs and batch size must be >= 1"),
    ("shift", 2, "shift augmentation needs image inputs"),
    ("data", 2, "data file not found"),
    ("model", 2, "model file not found"),
    ("corrupt", 3, "net.onnx"),
], ids=repr)
def test_train_errors(files, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str,
                      code: int, message: str) -> None:
    model, train, _ = files
    out = str(tmp_path / "g.pt")
    argv = ["advgan", "train", model, "--data", train, "--eps", "0.3", "--out", out,
            "--epochs", "1"]
    edits = {"eps0": ["--eps", "0"], "eps2": ["--eps", "2"], "out_dir":
             ["--out", str(tmp_path / "no" / "g.pt")], "conv": ["--kind", "conv"],
             "epochs": ["--epochs", "0"], "shift": ["--shift", "2"],
             "data": ["--data", str(tmp_path / "none.npz")]}
    if case == "no_out":
        argv = argv[:7] + argv[9:]
    elif case == "model":
        argv[2] = str(tmp_path / "none.onnx")
    elif case == "corrupt":
        Path(model).write_bytes(b"\x00not onnx")
    else:
        argv += edits[case]
    if code == 2 and case in ("eps0", "no_out"):  # argparse: SystemExit(2), one line
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2 and message in _error(capsys)
        return
    assert main(argv) == code
    assert message in _error(capsys)
    assert not Path(out).exists()


@pytest.mark.parametrize("case, message", [
    ("missing", "generator file not found"),
    ("garbage", "is not a saved AdvGAN generator"),
    ("eps", "trained for eps 0.3, not 0.1"),
    ("shape", "the model takes (1, 6)"),
    ("out", "does not exist"),
], ids=repr)
def test_attack_errors(files, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str,
                       message: str) -> None:
    model, train, test = files
    gen = tmp_path / "g.pt"
    if case in ("eps", "shape", "out"):
        other = write_onnx(tmp_path / "wide.onnx", sizes=(5, 8, 3)) if case == "shape" else model
        data = train
        if case == "shape":
            x, y = points(flat_net((5, 8, 3)), 20, 0)
            np.savez(tmp_path / "wide.npz", x=x, y=y)
            data = str(tmp_path / "wide.npz")
        assert main(["advgan", "train", str(other), "--data", data, "--eps", "0.3", "--out",
                     str(gen), "--epochs", "1"]) == 0
        capsys.readouterr()
    elif case == "garbage":
        gen.write_text("hello")
    argv = ["advgan", "attack", model, "--generator", str(gen), "--data", test]
    argv += {"eps": ["--eps", "0.1"], "out": ["--out", str(tmp_path / "no" / "r.json")]}.get(
        case, [])
    assert main(argv) == 2
    assert message in _error(capsys)
