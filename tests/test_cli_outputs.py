"""Output paths are checked before any work starts (one line, exit 2, nothing written);
``verify`` prints its verdict before writing, and a write failure leaves no stray file;
``certify`` streams its rows as samples finish and prints the summary before the plot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from tests.nets import float32_layers, random_layers, relu_onnx
from verinet.cli import main
from verinet.types import InputError

ROOT = Path(__file__).resolve().parents[1]


def _net_and_prop(tmp_path: Path) -> tuple[Path, Path]:
    layers = float32_layers(random_layers(np.random.default_rng(0), [2, 6, 2]))
    net = tmp_path / "net.onnx"
    onnx.save(relu_onnx(layers), net)
    prop = tmp_path / "p.vnnlib"
    decl = ["(declare-const X_0 Real)", "(declare-const X_1 Real)", "(declare-const Y_0 Real)",
            "(declare-const Y_1 Real)"]
    body = ["(assert (>= X_0 -1))", "(assert (<= X_0 1))", "(assert (>= X_1 -1))",
            "(assert (<= X_1 1))", "(assert (>= Y_0 1000000))"]
    prop.write_text("\n".join(decl + body) + "\n")
    return net, prop


def _bad_paths(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    afile = tmp_path / "afile"
    afile.write_text("x")
    return {"missing dir": (tmp_path / "nope" / "r.txt", "does not exist"),
            "a directory": (tmp_path, "is a directory"),
            "under a file": (afile / "r.txt", "is not a directory")}


def _one_line(err: str, match: str) -> None:
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith(("WARNING", "INFO"))]
    assert len(lines) == 1 and match in lines[0], err
    assert "Traceback" not in err


@pytest.mark.parametrize("case", ["missing dir", "a directory", "under a file"])
def test_verify_refuses_a_bad_out_before_any_work(tmp_path, capsys, case) -> None:
    path, match = _bad_paths(tmp_path)[case]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    # the model does not even exist: the output check comes first
    code = main(["verify", str(tmp_path / "missing.onnx"), str(tmp_path / "p.vnnlib"),
                 "--out", str(path)])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    _one_line(err, match)
    assert "--out" in err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written


@pytest.mark.parametrize("option", ["--out", "--csv", "--plot"])
@pytest.mark.parametrize("case", ["missing dir", "a directory", "under a file"])
def test_certify_and_pac_refuse_bad_outputs_before_any_work(tmp_path, capsys, option,
                                                             case) -> None:
    path, match = _bad_paths(tmp_path)[case]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    for command in ("certify", "pac"):
        code = main([command, str(tmp_path / "missing.onnx"), "--data",
                     str(tmp_path / "missing.csv"), "--eps", "0.01", option, str(path)])
        out, err = capsys.readouterr()
        assert code == 2 and out == "", (command, err)
        _one_line(err, match)
        assert option in err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_two_outputs_on_one_path_are_refused(tmp_path, capsys) -> None:
    same = str(tmp_path / "r.json")
    code = main(["certify", "--eps", "0.01", "--out", same, "--csv", same])
    _, err = capsys.readouterr()
    assert code == 2
    _one_line(err, "same file")


def test_verify_prints_its_verdict_before_a_failing_write(tmp_path, capsys,
                                                          monkeypatch) -> None:
    net, prop = _net_and_prop(tmp_path)
    out = tmp_path / "res.txt"

    def full_disk(path, text):
        raise InputError(f"cannot write {path}: No space left on device")

    monkeypatch.setattr("verinet.report.vnncomp.atomic_write", full_disk)
    code = main(["verify", str(net), str(prop), "--timeout", "20", "--out", str(out)])
    stdout, err = capsys.readouterr()
    assert stdout.startswith("unsat")  # the verdict reached the user
    assert code == 2
    _one_line(err, "No space left on device")
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if "tmp" in p.name] == []


def test_a_failing_result_write_leaves_no_temp_file(tmp_path) -> None:
    from verinet.report.vnncomp import write_result_file

    target = tmp_path / "sub"
    target.mkdir()
    with pytest.raises(InputError, match="cannot write"):
        write_result_file(target, "unsat\n")  # a directory: the rename fails
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub"]
    assert list(target.iterdir()) == []


def test_certify_streams_rows_into_a_pipe_and_prints_the_summary_before_the_plot(
        tmp_path) -> None:
    plot = tmp_path / "p.png"
    proc = subprocess.Popen(
        [sys.executable, "-m", "verinet.cli", "certify", "--eps", "0.02", "--samples", "12",
         "--timeout", "5", "--jobs", "1", "--plot", str(plot)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    first = [proc.stdout.readline() for _ in range(3)]  # header, rule, first row
    assert first[0].split()[:4] == ["index", "label", "pred", "status"]
    assert first[2].split()[0] == "0"
    assert proc.poll() is None  # the first row came while later samples still run
    rest, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    lines = rest.splitlines()
    assert [ln.split()[0] for ln in lines[:11]] == [str(i) for i in range(1, 12)]
    assert any(ln.startswith("samples ") for ln in lines)
    assert plot.is_file()
    assert "WARNING" not in err  # the README's first command prints no warning


def test_a_directory_as_the_model_or_the_property_is_named_so(tmp_path, capsys) -> None:
    net, prop = _net_and_prop(tmp_path)
    for argv in (["verify", str(tmp_path), str(prop)], ["verify", str(net), str(tmp_path)],
                 ["certify", str(tmp_path), "--data", str(prop), "--eps", "0.1"]):
        code = main(argv)
        _, err = capsys.readouterr()
        assert code == 2
        _one_line(err, "is a directory, not a file")


def test_empty_model_and_property_files_name_the_file(tmp_path, capsys) -> None:
    net, prop = _net_and_prop(tmp_path)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    assert main(["verify", str(empty), str(prop)]) == 3
    _one_line(capsys.readouterr()[1], f"model file {empty} is empty")
    blank = tmp_path / "blank.vnnlib"
    blank.write_text("")
    assert main(["verify", str(net), str(blank)]) == 4
    _one_line(capsys.readouterr()[1], f"property file {blank} is empty")


def test_a_short_sample_selection_is_announced(tmp_path, caplog) -> None:
    from verinet.data import load_samples

    data = tmp_path / "d.csv"
    data.write_text("\n".join(f"{i % 2},0.1,0.2" for i in range(10)) + "\n")
    with caplog.at_level("WARNING"):
        got = load_samples(data, n_inputs=2, n_classes=2, samples=5, start=8)
    assert len(got) == 2
    assert "only 2 of the 5 requested samples exist from index 8" in caplog.text


@pytest.mark.parametrize(("argv", "prog", "match"), [
    (["certify", "--eps", "abc"], "verinet certify", "not a number: 'abc'"),
    (["verify", "m.onnx"], "verinet verify", "required: property"),
    (["frobnicate"], "verinet", "invalid choice: 'frobnicate'"),
])
def test_usage_errors_are_one_line_with_a_hint(capsys, argv, prog, match) -> None:
    with pytest.raises(SystemExit, match="2"):
        main(argv)
    err = capsys.readouterr()[1]
    assert err.count("\n") == 1 and match in err
    assert err.startswith(f"{prog}: error: ") and f"(see {prog} --help)" in err


def test_version_flag(capsys) -> None:
    from verinet import __version__

    with pytest.raises(SystemExit, match="0"):
        main(["--version"])
    assert capsys.readouterr()[0] == f"verinet {__version__}\n"


def test_the_bare_certify_command_computes_ten_bundled_radii() -> None:
    from verinet.cli import parse_args
    from verinet.cli.samples import eps_and_inputs

    args = parse_args(["certify"])
    eps, _model, data, model_path, _ = eps_and_inputs(args)
    assert eps is None and args.radius and len(data) == 10
    assert model_path.endswith("digits_mlp.onnx")
    with pytest.raises(InputError, match=r"give --eps E, --radius, or both"):
        eps_and_inputs(parse_args(["certify", "m.onnx", "--data", "d.csv"]))


def test_the_api_runs_on_one_torch_thread_and_restores_the_setting(tmp_path,
                                                                    monkeypatch) -> None:
    import torch

    from verinet import api
    from verinet.spec.property import Property
    from verinet.types import Box

    net, _ = _net_and_prop(tmp_path)
    model = api.load_model(net)
    prop = Property.robustness(Box(np.full(2, -0.1), np.full(2, 0.1)), 0, 2)
    seen: list[int] = []
    monkeypatch.setattr("verinet.api._verify",
                        lambda *a, **k: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        api.verify(model, prop, timeout=5)
        api.verify(model, prop, timeout=5, threads=None)
        assert seen == [1, 2] and torch.get_num_threads() == 2
        with pytest.raises(InputError, match="threads must be an integer >= 1"):
            api.verify(model, prop, timeout=5, threads=0)
    finally:
        torch.set_num_threads(before)


def test_a_disk_full_half_way_keeps_every_finished_sample(tmp_path, capsys,
                                                          monkeypatch) -> None:
    import json

    from verinet.report import atomic

    js = tmp_path / "r.json"
    calls = {"n": 0}
    real = atomic.atomic_write

    def fill_up(path, text):  # the disk is full from the third write on
        calls["n"] += 1
        if calls["n"] >= 3:
            raise InputError(f"cannot write {path}: No space left on device")
        real(path, text)

    monkeypatch.setattr("verinet.report.certify.atomic_write", fill_up)
    code = main(["certify", "--eps", "0.02", "--samples", "5", "--timeout", "5", "--jobs", "1",
                 "--no-progress", "--out", str(js)])
    out, err = capsys.readouterr()
    assert code == 2
    _one_line(err, "No space left on device")
    rows = [ln.split()[0] for ln in out.splitlines() if ln[:1] == " "]
    assert rows == ["0", "1", "2"]  # the sample whose write failed is still shown
    assert [s["index"] for s in json.loads(js.read_text())["samples"]] == [0, 1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]  # no temp files


def test_corrupt_existing_outputs_are_replaced_whole(tmp_path, capsys) -> None:
    """Existing output files are never read: corrupt ones (binary junk, truncated JSON)
    are replaced atomically by complete outputs, and a run that fails before its first
    sample leaves them as they were."""
    import csv
    import json

    net, prop = _net_and_prop(tmp_path)
    res, js, table = tmp_path / "r.txt", tmp_path / "r.json", tmp_path / "r.csv"
    junk = b"\x00\xff{\"samples\": [ {\"index\": 0, "
    for p in (res, js, table):
        p.write_bytes(junk)
    assert main(["verify", str(net), str(prop), "--timeout", "20", "--out", str(res)]) == 0
    assert res.read_text() == "unsat\n"
    assert main(["certify", "--eps", "0.02", "--samples", "2", "--timeout", "5",
                 "--no-progress", "--out", str(js), "--csv", str(table)]) == 0
    assert [s["index"] for s in json.loads(js.read_text())["samples"]] == [0, 1]
    assert [r["index"] for r in csv.DictReader(table.open())] == ["0", "1"]
    # a failure before the first sample (bad data file) keeps the existing files intact
    js.write_bytes(junk)
    capsys.readouterr()
    code = main(["certify", "--eps", "0.02", "--data", str(tmp_path / "none.csv"),
                 "--out", str(js)])
    assert code == 2 and js.read_bytes() == junk
    # and no temporary file is left anywhere
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "net.onnx", "p.vnnlib", "r.csv", "r.json", "r.txt"]
