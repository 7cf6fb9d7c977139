"""Dataset-scale runs: scaling over workers, crash and resume, streaming cost.

Usage::

    python benchmarks/scale_out.py [--samples 100] [--fnn1-timeout 10] [--out DIR]
        [--skip-fnn1] [--skip-ray] [--kills 5] [--seed 0] [--parts scaling,crash,streaming]

Three parts, in one run, on this machine:

1. **Scaling.**  ``verinet certify`` on the first ``--samples`` images of DeepPAC's FNN1
   (``--eps 0.02 --radius --timeout 10``, ``../shared/deeppac``; skipped when absent) and
   of the bundled digits example (``--eps 0.03 --radius``, every radius exact), each with
   ``--jobs 1``, ``--jobs 2`` and ``--ray --jobs 2`` (a local 2-worker Ray cluster
   started by the run, its start-up included).  Each run is its own process and writes
   ``--records``; the table gives the wall time, the speed-up over ``--jobs 1``, and the
   overhead per sample ``(wall x workers - sum of the samples' own seconds) / samples``:
   worker time not spent on samples (start-up, model loading, dispatch, the idle tail).
   The records of the bundled runs (timings aside) must be identical; FNN1's samples
   mostly end at their time budget, so their bounds may differ (still sound) and only
   their indices are compared.
2. **Crash and resume.**  The bundled run with ``--jobs 2 --records`` is killed with
   SIGKILL at ``--kills`` random moments (seeded) and resumed with ``--resume`` each
   time; the final records must hold every sample once, with the indices, verdicts and
   bounds of the uninterrupted run.  Then a local worker and a Ray worker are killed
   (SIGKILL) in mid-run: the sample they held runs again and every record equals the
   uninterrupted run's.
3. **Streaming cost.**  Appending 10,000 synthetic sample records (inputs of the bundled
   model's size, 64, and of MNIST's, 784) through the record writer, against the old way
   (the whole JSON report rewritten after every sample: measured on the first 300 and
   extrapolated, since it grows quadratically).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
FNN1 = SHARED / "deeppac" / "models" / "mnist_FNN_1.onnx"
MNIST = SHARED / "deeppac" / "extras" / "mnist_100.csv"


def _cmd(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "verinet.cli", *args]


def _records(path: Path) -> dict[int, dict]:
    out: dict[int, dict] = {}
    lines = path.read_text().splitlines()
    for ln in lines[1:]:
        d = json.loads(ln)
        if d["index"] in out:
            raise AssertionError(f"{path}: sample {d['index']} twice")
        out[d["index"]] = d
    return out


def _strip(recs: dict[int, dict]) -> dict[int, dict]:
    return {i: {k: v for k, v in d.items() if k not in ("seconds", "timings")}
            for i, d in recs.items()}


def _verdicts(recs: dict[int, dict]) -> dict[int, tuple]:
    return {i: (d["status"], None if d["radius"] is None else
                (d["radius"]["lower"], d["radius"]["upper"])) for i, d in recs.items()}


def scaling(name: str, base: list[str], tmp: Path, skip_ray: bool) -> tuple[list[str], bool]:
    setups = [("jobs 1", ["--jobs", "1"], 1), ("jobs 2", ["--jobs", "2"], 2)]
    if not skip_ray:
        setups.append(("ray 2", ["--ray", "--jobs", "2"], 2))
    rows, recs = [], {}
    for label, extra, workers in setups:
        path = tmp / f"{name}-{label.replace(' ', '')}.jsonl"
        t0 = time.perf_counter()
        proc = subprocess.run(_cmd([*base, *extra, "--records", str(path), "--no-progress"]),
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"{name} {label}: exit {proc.returncode}: {proc.stderr[-500:]}")
        recs[label] = _records(path)
        busy = sum(d["seconds"] for d in recs[label].values())
        n = len(recs[label])
        rows.append((label, workers, wall, busy, n))
        print(f"  {name} {label}: {wall:.1f} s", file=sys.stderr, flush=True)
    ref = rows[0][2]
    lines = [f"{name}: {rows[0][4]} samples",
             f"  {'setup':<8}{'workers':>8}{'wall_s':>9}{'speed-up':>10}{'samples_s':>11}"
             f"{'overhead_s/sample':>19}"]
    for label, workers, wall, busy, n in rows:
        lines.append(f"  {label:<8}{workers:>8}{wall:>9.1f}{ref / wall:>10.2f}{busy:>11.1f}"
                     f"{(wall * workers - busy) / n:>19.3f}")
    over = {label: (wall * w - busy) / n for label, w, wall, busy, n in rows}
    if "ray 2" in over:
        lines.append(f"  Ray overhead per sample against --jobs 2: "
                     f"{over['ray 2'] - over['jobs 2']:+.3f} s")
    same = all(sorted(r) == sorted(recs["jobs 1"]) for r in recs.values())
    exact = all(_strip(r) == _strip(recs["jobs 1"]) for r in recs.values())
    lines.append(f"  same samples in every setup: {same}; records identical (timings "
                 f"aside): {exact}")
    return lines, exact


def _wait_lines(path: Path, n: int, proc: subprocess.Popen, limit: float = 300.0) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit and proc.poll() is None:
        if path.exists() and len(path.read_bytes().split(b"\n")) - 2 >= n:
            return
        time.sleep(0.05)


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(t) for t in text.split()]


def _workers(pid: int) -> list[int]:
    """The driver's spawned sample workers (not multiprocessing's resource tracker)."""
    out = []
    for c in _children(pid):
        try:
            cmd = Path(f"/proc/{c}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmd:
            out.append(c)
    return out


def _ray_workers() -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if b"ray::_Worker" in cmd:
                out.append(int(d.name))
    return out


def crash_and_resume(base: list[str], ref: dict[int, dict], tmp: Path, kills: int,
                     seed: int, duration: float, skip_ray: bool) -> tuple[list[str], bool]:
    rng = random.Random(seed)
    path = tmp / "crash.jsonl"
    args = [*base, "--jobs", "2", "--records", str(path), "--no-progress"]
    lines = ["crash and resume (bundled example, --jobs 2, kill -9 of the driver at a random "
             "moment of each run, then --resume):"]
    total = len(ref)
    for k in range(kills):
        had = len(_records(path)) if path.exists() and path.stat().st_size else 0
        # a moment while this run still has work: start-up plus its share of the samples
        t = rng.uniform(0.5, 3.0 + duration * (total - had) / total)
        proc = subprocess.Popen(_cmd([*args, "--resume"]), cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(t)
        kids = _children(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        for c in kids:  # orphaned workers end when their pipe closes; do not wait on them
            try:
                os.kill(c, signal.SIGKILL)
            except ProcessLookupError:
                pass
        now = len(_records(path)) if path.exists() and path.stat().st_size else 0
        torn = path.exists() and not path.read_bytes().endswith(b"\n")
        lines.append(f"  kill {k + 1} at {t:.2f} s: {now} sample(s) recorded (had {had} "
                     f"before this run){'; torn last line' if torn else ''}")
    done = subprocess.run(_cmd([*args, "--resume"]), cwd=ROOT, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    final = _records(path)
    ok = done.returncode == 0 and _verdicts(final) == _verdicts(ref)
    lines.append(f"  after the last --resume: {len(final)} samples, each once; indices, "
                 f"verdicts and bounds equal to the uninterrupted run: {ok}")
    setups = [("local worker", ["--jobs", "2"], _workers)]
    if not skip_ray:
        setups.append(("Ray worker", ["--ray", "--jobs", "2"], lambda pid: _ray_workers()))
    all_ok = ok
    for label, extra, find in setups:
        p = tmp / f"kill-{label.split()[0].lower()}.jsonl"
        proc = subprocess.Popen(_cmd([*base, *extra, "--records", str(p), "--no-progress"]),
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)
        _wait_lines(p, 3, proc)
        victims = find(proc.pid)
        if victims:
            os.kill(victims[0], signal.SIGKILL)
        _, err = proc.communicate(timeout=600)
        recs = _records(p)
        same = proc.returncode == 0 and _strip(recs) == _strip(ref)
        retried = "running it again" in err
        all_ok &= same and retried and bool(victims)
        lines.append(f"  {label} killed mid-run (pid {victims[0] if victims else '-'}): "
                     f"sample retried: {retried}; records equal to the uninterrupted run: "
                     f"{same}")
    return lines, all_ok


def streaming(tmp: Path) -> list[str]:
    import numpy as np

    from verinet.certify.result import CertifyReport, SampleReport, SampleStatus, Witness
    from verinet.report.certify import write_json
    from verinet.report.records import RecordHeader, open_records
    from verinet.types import Reason, Sandwich

    rng = np.random.default_rng(0)
    lines = ["streaming cost (10,000 synthetic samples):"]
    for n_in in (64, 784):
        reps = [SampleReport(i, 3, 3, SampleStatus.VERIFIED, Reason.PROVEN_BY_MILP, 0.03,
                             Sandwich(0.05, 0.06, "milp", "fmn"), False,
                             Witness(rng.random(n_in), 5, 0.06, "fmn"), 1.0,
                             (("attack", 0.5),), "", (("fmn", 0.06),)) for i in range(10_000)]
        path = tmp / f"stream{n_in}.jsonl"
        t0 = time.perf_counter()
        writer, _ = open_records(path, RecordHeader({"synthetic": n_in}, {}), resume=False)
        with writer:
            for r in reps:
                writer.append(r)
        rec = time.perf_counter() - t0
        js = tmp / f"stream{n_in}.json"
        t0 = time.perf_counter()
        k = 300
        for i in range(1, k + 1):
            write_json(CertifyReport("m", "d", tuple(reps[:i]), 0.03), js)
        old = time.perf_counter() - t0
        est = old * (10_000 / k) ** 2  # the i-th rewrite costs ~i: quadratic in the count
        lines.append(f"  {n_in:>4} inputs: records {rec:.2f} s ({path.stat().st_size / 1e6:.0f} "
                     f"MB); rewrite-per-sample JSON: {old:.1f} s for the first {k}, about "
                     f"{est / 60:.0f} min for 10,000 (extrapolated)")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--fnn1-timeout", type=float, default=10.0)
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-fnn1", action="store_true")
    ap.add_argument("--skip-ray", action="store_true")
    ap.add_argument("--parts", default="scaling,crash,streaming",
                    help="comma list of scaling, crash, streaming (default: all)")
    ap.add_argument("--out", type=Path, help="write the report here too")
    args = ap.parse_args(argv)
    lines = [f"# python3 benchmarks/scale_out.py --samples {args.samples}  "
             f"({os.cpu_count()} cores)"]
    ok = True
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        parts = set(args.parts.split(","))
        bundled = ["certify", "--eps", "0.03", "--radius", "--samples", str(args.samples)]
        if "scaling" in parts:
            part, exact = scaling("bundled digits example", bundled, tmp, args.skip_ray)
            lines += part
            ok &= exact
        else:  # the crash part's reference run
            subprocess.run(_cmd([*bundled, "--jobs", "1", "--no-progress", "--records",
                                 str(tmp / "bundled digits example-jobs1.jsonl")]), cwd=ROOT,
                           stdout=subprocess.DEVNULL, check=True)
        if "scaling" in parts and not args.skip_fnn1 and FNN1.is_file():
            fnn1 = ["certify", str(FNN1), "--data", str(MNIST), "--scale", "255", "--mean",
                    "0.1307", "--std", "0.3081", "--eps", "0.02", "--radius", "--timeout",
                    f"{args.fnn1_timeout:g}", "--samples", str(args.samples)]
            part, _ = scaling("FNN1", fnn1, tmp, args.skip_ray)
            lines += part
        if "crash" in parts:
            ref = _records(tmp / "bundled digits example-jobs1.jsonl")
            duration = sum(d["seconds"] for d in ref.values()) / 2
            part, crash_ok = crash_and_resume(bundled, ref, tmp, args.kills, args.seed,
                                              duration, args.skip_ray)
            lines += part
            ok &= crash_ok
        if "streaming" in parts:
            lines += streaming(tmp)
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if args.out is not None:
        args.out.write_text(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
