"""CLI end to end: verdicts, result files, and bad input with documented exit codes."""

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from tests.nets import float32_layers, random_layers, relu_onnx
from verinet.cli import main, parse_args

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "vnncomp"


def _write_net(tmp_path, seed=0, sizes=(2, 6, 2)):
    layers = float32_layers(random_layers(np.random.default_rng(seed), list(sizes)))
    path = tmp_path / "net.onnx"
    onnx.save(relu_onnx(layers), path)
    return path


def _vnnlib(n_in, n_out, lo, hi, body):
    decl = [f"(declare-const X_{i} Real)" for i in range(n_in)]
    decl += [f"(declare-const Y_{j} Real)" for j in range(n_out)]
    bounds = []
    for i in range(n_in):
        bounds += [f"(assert (>= X_{i} {lo}))", f"(assert (<= X_{i} {hi}))"]
    return "\n".join(decl + bounds + [body]) + "\n"


def _run(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_sat_writes_witness(tmp_path, capsys):
    net = _write_net(tmp_path)
    prop = tmp_path / "p.vnnlib"
    # Y_0 >= -1000 is reachable everywhere: sat with a witness.
    prop.write_text(_vnnlib(2, 2, -1, 1, "(assert (>= Y_0 -1000))"))
    out = tmp_path / "res.txt"
    code, stdout, _ = _run(capsys, ["verify", str(net), str(prop), "--timeout", "20",
                                    "--out", str(out)])
    assert code == 0 and stdout.startswith("sat")
    lines = out.read_text().splitlines()
    assert lines[0] == "sat" and lines[1].startswith("((X_0 ")
    assert lines[-1].startswith(" (Y_1 ") and lines[-1].endswith("))")


def test_unsat(tmp_path, capsys):
    net = _write_net(tmp_path)
    prop = tmp_path / "p.vnnlib"
    prop.write_text(_vnnlib(2, 2, -1, 1, "(assert (>= Y_0 1000000))"))
    out = tmp_path / "res.txt"
    code, stdout, _ = _run(capsys, ["verify", str(net), str(prop), "--timeout", "20",
                                    "--out", str(out)])
    assert code == 0 and stdout.startswith("unsat") and out.read_text() == "unsat\n"


def _assert_one_line_error(err, code, expected_code, match):
    assert code == expected_code, err
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith(("WARNING", "INFO"))]
    assert len(lines) == 1 and match in lines[0], err
    assert "Traceback" not in err


def test_missing_model(tmp_path, capsys):
    prop = tmp_path / "p.vnnlib"
    prop.write_text(_vnnlib(2, 2, -1, 1, "(assert (>= Y_0 0))"))
    out = tmp_path / "res.txt"
    code, _, err = _run(capsys, ["verify", str(tmp_path / "nope.onnx"), str(prop),
                                 "--out", str(out)])
    _assert_one_line_error(err, code, 2, "not found")
    assert out.read_text() == "error\n"


def test_missing_property(tmp_path, capsys):
    net = _write_net(tmp_path)
    code, _, err = _run(capsys, ["verify", str(net), str(tmp_path / "nope.vnnlib")])
    _assert_one_line_error(err, code, 2, "not found")


def test_corrupt_onnx(tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage-not-a-model" * 10)
    prop = tmp_path / "p.vnnlib"
    prop.write_text(_vnnlib(2, 2, -1, 1, "(assert (>= Y_0 0))"))
    code, _, err = _run(capsys, ["verify", str(bad), str(prop)])
    _assert_one_line_error(err, code, 3, "")


def test_unsupported_op(tmp_path, capsys):
    node = helper.make_node("Erf", ["x"], ["y"], name="erf_node")
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    path = tmp_path / "erf.onnx"
    onnx.save(model, path)
    prop = tmp_path / "p.vnnlib"
    prop.write_text(_vnnlib(2, 2, -1, 1, "(assert (>= Y_0 0))"))
    code, _, err = _run(capsys, ["verify", str(path), str(prop)])
    _assert_one_line_error(err, code, 3, "erf_node")


def test_dimension_mismatch(tmp_path, capsys):
    net = _write_net(tmp_path)
    prop = tmp_path / "p.vnnlib"
    prop.write_text(_vnnlib(3, 2, -1, 1, "(assert (>= Y_0 0))"))
    code, _, err = _run(capsys, ["verify", str(net), str(prop)])
    _assert_one_line_error(err, code, 2, "3 inputs")  # the README's table: 2


def test_undeclared_variable(tmp_path, capsys):
    net = _write_net(tmp_path)
    prop = tmp_path / "p.vnnlib"
    prop.write_text(_vnnlib(2, 2, -1, 1, "(assert (>= Y_7 0))"))
    code, _, err = _run(capsys, ["verify", str(net), str(prop)])
    _assert_one_line_error(err, code, 4, "Y_7")


@pytest.mark.parametrize("value", ["0", "-5", "nan", "abc"])
def test_bad_timeout(tmp_path, capsys, value):
    net = _write_net(tmp_path)
    # argparse's SystemExit carries only the exit code; its message goes to stderr (below)
    with pytest.raises(SystemExit) as e:
        parse_args(["verify", str(net), "p.vnnlib", "--timeout", value])
    assert e.value.code == 2
    assert "timeout" in capsys.readouterr().err


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared VNN-COMP instances absent")
@pytest.mark.parametrize("inst,expected", [
    ("acasxu/prop_1.vnnlib:ACASXU_run2a_1_1_batch_2000.onnx", "unsat"),
    ("acasxu/prop_2.vnnlib:ACASXU_run2a_2_1_batch_2000.onnx", "sat"),
    ("mnist_fc_2022/prop_0_0.03.vnnlib:mnist-net_256x2.onnx", "unsat"),
    ("mnist_fc_2022/prop_1_0.03.vnnlib:mnist-net_256x2.onnx", "sat"),
])
def test_shared_instances(tmp_path, capsys, inst, expected):
    vnnlib, model = inst.split(":")
    out = tmp_path / "res.txt"
    code, stdout, err = _run(capsys, ["verify", str(SHARED / "onnx" / model),
                                      str(SHARED / "vnnlib" / vnnlib), "--timeout", "100",
                                      "--out", str(out)])
    assert code == 0, err
    assert out.read_text().splitlines()[0] == expected


def test_process_entry_point_flushes_and_keeps_exit_codes(tmp_path):
    """``python -m verinet.cli`` (the console script's ``run``) ends with a fast exit:
    stdout, stderr and the result file are complete and the exit code is kept."""
    import subprocess
    import sys

    net = _write_net(tmp_path)
    prop = tmp_path / "p.vnnlib"
    prop.write_text(_vnnlib(2, 2, -1, 1, "(assert (>= Y_0 1000000))"))
    out = tmp_path / "res.txt"
    ok = subprocess.run([sys.executable, "-m", "verinet.cli", "verify", str(net), str(prop),
                         "--timeout", "20", "--out", str(out)],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and ok.stdout.startswith("unsat"), ok.stderr
    assert out.read_text() == "unsat\n"
    bad = subprocess.run([sys.executable, "-m", "verinet.cli", "verify",
                          str(tmp_path / "missing.onnx"), str(prop)],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.startswith("verinet: error:") and bad.stderr.count("\n") == 1


def test_the_parser_and_the_ray_start_import_nothing_heavy():
    """Building the parser, checking the options and the ``--ray`` start's own module
    import neither torch nor onnx nor the engines, so a ``--ray`` cluster starts while the
    driver imports them (a fresh interpreter: this process has them loaded already)."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from verinet.cli import parse_args\n"
            "from verinet.cli.samples import backend, check_sample_outputs, eps_option, shard\n"
            "import verinet.runs.ray_start\n"
            "a = parse_args(['certify', '--eps', '0.03', '--ray', '--shard', '0/2'])\n"
            "eps_option(a); check_sample_outputs(a); backend(a); shard(a)\n"
            "print(sorted(m for m in ('torch', 'onnx', 'scipy', 'verinet.certify.engine')\n"
            "             if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
