"""SIGINT and SIGTERM stop a command promptly and never become a result: sent while a
HiGHS MIP solve runs, ``certify`` exits 130 (143) with every finished sample in its JSON,
CSV and table, and ``verify`` exits 130 with ``unknown`` in its result file."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from verinet.cli import main

ROOT = Path(__file__).resolve().parents[1]

# Runs the CLI with one stage replaced by a real HiGHS MIP that takes minutes (announced
# with "solving" on stderr), so that the signal arrives during the solve.
CERTIFY = """
import sys
from tests.hard_mip import market_split
import verinet.runs.sample as run
orig = run.certify_sample
def slow(network, onnx_eval, index, *a, **k):
    if index >= 1:
        print("solving", file=sys.stderr, flush=True)
        market_split().solve()
    return orig(network, onnx_eval, index, *a, **k)
run.certify_sample = slow
from verinet.cli import main
sys.exit(main(sys.argv[1:]))
"""
VERIFY = """
import sys
from tests.hard_mip import market_split
import verinet.cli as cli
import verinet.cli.verify as verify
def slow(*a, **k):
    print("solving", file=sys.stderr, flush=True)
    market_split().solve()
    raise SystemExit("the solve was not interrupted")
verify._run_verify = slow
sys.exit(cli.main(sys.argv[1:]))
"""


def _interrupt_when_solving(script: str, args: list[str], signum: int
                            ) -> tuple[int, str, str, float]:
    proc = subprocess.Popen([sys.executable, "-c", script, *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if line.strip() == "solving":
            break
    else:
        raise AssertionError("".join(seen))
    time.sleep(1.0)  # inside the branch and bound by now
    t0 = time.monotonic()
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, "".join(seen) + err, time.monotonic() - t0


@pytest.mark.parametrize(("signum", "code", "name"), [(signal.SIGINT, 130, "SIGINT"),
                                                       (signal.SIGTERM, 143, "SIGTERM")])
def test_certify_interrupted_in_a_highs_solve_keeps_finished_samples(tmp_path, signum,
                                                                     code, name) -> None:
    js, cs, rec = tmp_path / "r.json", tmp_path / "r.csv", tmp_path / "r.jsonl"
    rc, out, err, seconds = _interrupt_when_solving(
        CERTIFY, ["certify", "--eps", "0.02", "--samples", "5", "--timeout", "5", "--jobs", "1",
                  "--no-progress", "--out", str(js), "--csv", str(cs), "--records", str(rec)],
        signum)
    assert rc == code, err
    assert seconds < 15.0  # prompt: the MIP alone would run for minutes
    assert f"interrupted ({name})" in err and "Traceback" not in err
    samples = json.loads(js.read_text())["samples"]
    assert [s["index"] for s in samples] == [0]
    lines = rec.read_text().splitlines()  # the header and the finished sample, nothing torn
    assert [json.loads(ln)["index"] for ln in lines[1:]] == [0]
    with open(cs, newline="") as f:
        assert [r["index"] for r in csv.DictReader(f)] == ["0"]
    rows = [ln for ln in out.splitlines() if ln[:1] == " " and ln.split()[0].isdigit()]
    assert [r.split()[0] for r in rows] == ["0"]  # the table holds the finished sample
    assert any(ln.startswith("samples ") for ln in out.splitlines())


def test_verify_interrupted_in_a_highs_solve_writes_unknown(tmp_path) -> None:
    res = tmp_path / "res.txt"
    rc, out, err, seconds = _interrupt_when_solving(
        VERIFY, ["verify", "m.onnx", "p.vnnlib", "--timeout", "300", "--out", str(res)],
        signal.SIGINT)
    assert rc == 130, err
    assert seconds < 15.0
    assert out.startswith("unknown (interrupted)")
    assert res.read_text() == "unknown\n"
    assert [p.name for p in tmp_path.iterdir()] == ["res.txt"]


def test_verify_interrupted_after_its_limit_writes_timeout(tmp_path, capsys,
                                                          monkeypatch) -> None:
    res = tmp_path / "res.txt"
    clock = iter([0.0, 10.0, 10.0, 10.0])
    monkeypatch.setattr("verinet.cli.verify.time.monotonic", lambda: next(clock, 10.0))

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr("verinet.cli.verify._run_verify", interrupted)
    code = main(["verify", "m.onnx", "p.vnnlib", "--timeout", "5", "--out", str(res)])
    out, _ = capsys.readouterr()
    assert code == 130
    assert out.startswith("timeout (interrupted)")
    assert res.read_text() == "timeout\n"
