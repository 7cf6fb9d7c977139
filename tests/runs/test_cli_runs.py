"""``--records``/``--resume``/``--shard``/``--jobs`` on the command line, ``verinet report``
and ``verinet merge``: one-line errors, nothing overwritten, identical records."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from verinet.cli import main

ROOT = Path(__file__).resolve().parents[2]
CERTIFY = ["certify", "--eps", "0.03", "--samples", "4", "--attacks", "fmn", "--timeout", "5",
           "--no-milp", "--no-progress"]
PAC = ["pac", "--eps", "0.03", "--samples", "3", "--k1", "200", "--k2", "300", "--epsilon",
       "0.1", "--eta", "0.01", "--no-progress"]


def _one_line(err: str, text: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and text in lines[0], err


def _strip(path: Path) -> dict[int, dict]:
    def clean(d: dict) -> dict:
        d = {k: v for k, v in d.items() if k not in ("seconds", "timings")}
        pac = (d.get("radius") or {}).get("pac")
        if pac is not None:
            pac.pop("seconds")
            for c in [pac["at_eps"], *pac["checks"]]:
                if c is not None:
                    c.pop("seconds")
        return d

    return {(d := json.loads(ln))["index"]: clean(d) for ln in path.read_text().splitlines()[1:]}


def test_resume_refuses_another_run_in_one_line_and_changes_nothing(tmp_path, capsys) -> None:
    rec = tmp_path / "r.jsonl"
    assert main([*CERTIFY, "--jobs", "1", "--records", str(rec)]) == 0
    before = rec.read_bytes()
    capsys.readouterr()
    assert main([*CERTIFY, "--jobs", "1", "--records", str(rec), "--resume",
                 "--seed", "3"]) == 2
    _one_line(capsys.readouterr().err,
              "the records are of another run (seed differs); nothing was changed")
    assert rec.read_bytes() == before
    assert main([*CERTIFY, "--jobs", "1", "--records", str(rec)]) == 2
    _one_line(capsys.readouterr().err, "exists (add --resume to continue it, or remove it)")
    assert main([*CERTIFY, "--resume"]) == 2
    _one_line(capsys.readouterr().err, "--resume needs --records PATH")
    # A finished run resumed: nothing runs again, the report is whole.
    js = tmp_path / "r.json"
    assert main([*CERTIFY, "--jobs", "1", "--records", str(rec), "--resume", "--out",
                 str(js)]) == 0
    assert rec.read_bytes() == before
    assert [s["index"] for s in json.loads(js.read_text())["samples"]] == [0, 1, 2, 3]


def test_bad_run_options_are_one_line_errors_before_any_work(tmp_path, capsys) -> None:
    for extra, text in ((["--jobs", "0"], "--jobs must be at least 1, got 0"),
                        (["--shard", "2/2"], "--shard I/N needs 0 <= I < N"),
                        (["--task-timeout", "-1"], "--task-timeout must be > 0"),
                        (["--records", str(tmp_path)], "is a directory")):
        assert main([*CERTIFY, *extra]) == 2
        _one_line(capsys.readouterr().err, text)
    assert list(tmp_path.iterdir()) == []


def test_report_and_merge_commands(tmp_path, capsys) -> None:
    whole = tmp_path / "whole.jsonl"
    assert main([*CERTIFY, "--jobs", "1", "--records", str(whole)]) == 0
    shards = []
    for i in range(2):
        shards.append(tmp_path / f"s{i}.jsonl")
        assert main([*CERTIFY, "--jobs", "1", "--shard", f"{i}/2", "--records",
                     str(shards[-1])]) == 0
    capsys.readouterr()
    merged = tmp_path / "m.jsonl"
    assert main(["merge", *map(str, shards), "--out", str(merged)]) == 0
    assert "merged 2 file(s), 4 samples" in capsys.readouterr().out
    assert _strip(merged) == _strip(whole)
    assert main(["merge", str(shards[0]), str(shards[0]), "--out", str(tmp_path / "x")]) == 2
    _one_line(capsys.readouterr().err, "part(s) 0 given twice")
    js, csv = tmp_path / "r.json", tmp_path / "r.csv"
    assert main(["report", str(merged), "--out", str(js), "--csv", str(csv)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:4] == ["index", "label", "pred", "status"]
    assert "samples            4" in out
    assert [s["index"] for s in json.loads(js.read_text())["samples"]] == [0, 1, 2, 3]
    assert len(csv.read_text().splitlines()) == 5
    assert main(["report", str(tmp_path / "missing.jsonl")]) == 2
    _one_line(capsys.readouterr().err, "cannot read records")


def test_pac_records_with_jobs_2_equal_jobs_1(tmp_path) -> None:
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    assert main([*PAC, "--jobs", "1", "--records", str(one)]) == 0
    assert main([*PAC, "--jobs", "2", "--records", str(two)]) == 0
    assert _strip(one) == _strip(two) and sorted(_strip(one)) == [0, 1, 2]


def test_sigint_with_two_workers_keeps_the_finished_samples(tmp_path) -> None:
    rec, js = tmp_path / "r.jsonl", tmp_path / "r.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "verinet.cli", "certify", "--eps", "0.03", "--radius",
         "--samples", "60", "--timeout", "30", "--jobs", "2", "--no-progress",
         "--records", str(rec), "--out", str(js)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not rec.exists()
                                           or len(rec.read_text().splitlines()) < 3):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted (SIGINT)" in err and "Traceback" not in err
    recorded = sorted(_strip(rec))
    assert len(recorded) >= 2
    assert sorted(s["index"] for s in json.loads(js.read_text())["samples"]) == recorded
    # Resumed, the run finishes what was left and records nothing twice.
    assert main(["certify", "--eps", "0.03", "--radius", "--samples", "60", "--timeout", "30",
                 "--jobs", "2", "--no-progress", "--records", str(rec), "--resume"]) == 0
    assert sorted(_strip(rec)) == list(range(60))
