"""Run ``verinet verify`` on every row of a VNN-COMP manifest and score it.

Usage::

    python benchmarks/vnncomp.py ../shared/vnncomp/manifest.csv [--filter acasxu]
        [--ids ID ...] [--timeout-scale 1.0] [--csv results.csv] [--verify-args "..."]
        [--jobs N] [--peer REV]
    python benchmarks/vnncomp.py ../shared/vnnlib2/manifest_multinet.csv

A manifest names each instance's model in an ``onnx`` column, or (VNN-LIB 2.0 queries over
several networks) in a ``networks`` column ``f=path;g=path``: the first is the positional
model, the others go to ``--network NAME=PATH``.  Every ``sat`` witness in the result file
is replayed on the original ONNX files (onnxruntime, outputs concatenated in declaration
order) against the property, with tolerance 0; a witness that does not replay makes the
verdict WRONG.

Each instance runs as its own process (as in the competition), so its wall time includes
start-up and model loading, and its peak resident memory is read from ``wait4``.  With
``--jobs N`` N instances run at once, each in its own process with its own timeout
(``verinet verify --workers 1 --threads 1`` unless ``--verify-args`` says otherwise; on a
machine with fewer than N free cores the instances compete, and their times show it).  A
verdict that contradicts ``expected`` is counted as WRONG (a release blocker).  The time
ratio compares the summed times of instances solved by both verinet and the
``abcrown_time_s`` column.

``--peer REV`` makes the timing machine-relative: the commit ``REV`` of this repository
(``git archive``, in a temporary tree) runs every instance too, interleaved with the
working tree's run (alternating which goes first), so both see the same machine and the
same load.  The summary adds the peer's score and the ratio of the summed times on the
instances both solve.
"""

from __future__ import annotations

import argparse
import csv
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Row:
    id: str
    benchmark: str
    onnx: Path
    vnnlib: Path
    timeout: float
    expected: str
    abcrown_time: float | None
    networks: tuple[tuple[str, Path], ...] = ()  # declared name -> file, several networks


@dataclass(frozen=True)
class Outcome:
    row: Row
    verdict: str
    seconds: float
    peak_mb: float
    exit_code: int
    limit: float  # the --timeout this run was given
    witness: str = ""  # sat only: "replayed" or why the witness does not replay

    @property
    def overrun(self) -> float:
        """Seconds past the limit (negative: ended inside it)."""
        return self.seconds - self.limit

    @property
    def solved(self) -> bool:
        return self.verdict in ("sat", "unsat") and self.verdict == self.row.expected

    @property
    def wrong(self) -> bool:
        bad_witness = self.verdict == "sat" and self.witness != "replayed"
        return self.verdict in ("sat", "unsat") and (
            self.verdict != self.row.expected or bad_witness)


def read_manifest(path: Path) -> list[Row]:
    base = path.resolve().parent  # absolute: a --peer tree runs from its own directory
    rows = []
    with path.open() as f:
        for r in csv.DictReader(f):
            t = r.get("abcrown_time_s") or ""
            ok = r.get("abcrown_result") == r["expected"]
            nets = tuple((name, base / p) for name, p in (
                item.split("=", 1) for item in (r.get("networks") or "").split(";") if item))
            onnx = nets[0][1] if nets else base / r["onnx"]
            rows.append(Row(r["id"], r["benchmark"], onnx, base / r["vnnlib"],
                            float(r["timeout_s"]), r["expected"],
                            float(t) if t and ok else None, nets))
    return rows


def replay_witness(row: Row, text: str) -> str:
    """Replay the ``sat`` result file's inputs (1.0 or 2.0 form) on the original ONNX
    file(s): "replayed" if the outputs (concatenated in declaration order) violate the
    property, else why not."""
    import numpy as np

    from verinet.onnx_import import load_onnx, onnx_evaluator
    from verinet.report.vnncomp import read_witness
    from verinet.spec.vnnlib import read_query

    query = read_query(row.vnnlib)
    prop = query.property
    x = read_witness(text, query)
    if x is None:
        return "no witness"
    paths = [p for _, p in row.networks] or [row.onnx]
    ys = [onnx_evaluator(load_onnx(p, check=False).onnx_model)(x[None])[0] for p in paths]
    y = np.concatenate(ys)
    if y.size != prop.n_outputs:
        return f"{y.size} outputs, property has {prop.n_outputs}"
    return "replayed" if prop.violated_by(x, y) >= 0 else "does not violate on ONNX"


def run_one(row: Row, scale: float, extra: list[str], tree: Path = ROOT) -> Outcome:
    """One instance, run by the verinet in ``tree`` (this working tree by default)."""
    timeout = row.timeout * scale
    env = None if tree == ROOT else {**os.environ, "PYTHONPATH": str(tree)}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.txt"
        cmd = [sys.executable, "-m", "verinet.cli", "verify", str(row.onnx), str(row.vnnlib),
               "--timeout", f"{timeout:g}", "--out", str(out), *extra]
        for name, path in row.networks[1:]:
            cmd += ["--network", f"{name}={path}"]
        errfile = Path(tmp) / "stderr.txt"
        t0 = time.perf_counter()
        with errfile.open("wb") as ef:
            proc = subprocess.Popen(cmd, cwd=tree, env=env, stdout=subprocess.DEVNULL,
                                    stderr=ef)
            _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        code = os.waitstatus_to_exitcode(status)
        err = errfile.read_text(errors="replace")
        text = out.read_text() if out.exists() else "error"
        verdict = text.split("\n", 1)[0].strip()
    if code != 0 and err:
        print(f"  [{row.id}] exit {code}: {err.strip().splitlines()[-1]}", file=sys.stderr)
    witness = replay_witness(row, text) if verdict == "sat" else ""
    return Outcome(row, verdict, seconds, usage.ru_maxrss / 1024.0, code, timeout, witness)


def summarise(outcomes: list[Outcome]) -> str:
    lines = []
    groups: dict[str, list[Outcome]] = {}
    for o in outcomes:
        groups.setdefault(o.row.benchmark, []).append(o)
    groups["ALL"] = outcomes
    hdr = f"{'benchmark':<16}{'n':>4}{'solved':>8}{'wrong':>7}{'unk/to':>8}{'time_s':>9}" \
          f"{'abcrown_s':>11}{'ratio':>7}{'peak_MB':>9}{'max_over_s':>11}"
    lines.append(hdr)
    for name, os_ in groups.items():
        solved = [o for o in os_ if o.solved]
        both = [o for o in solved if o.row.abcrown_time is not None]
        ours = sum(o.seconds for o in both)
        theirs = sum(o.row.abcrown_time or 0.0 for o in both)
        ratio = f"{ours / theirs:.2f}" if theirs > 0 else "-"
        unk = sum(1 for o in os_ if not o.solved and not o.wrong)
        lines.append(
            f"{name:<16}{len(os_):>4}{len(solved):>8}{sum(o.wrong for o in os_):>7}{unk:>8}"
            f"{sum(o.seconds for o in os_):>9.1f}{theirs:>11.1f}{ratio:>7}"
            f"{max(o.peak_mb for o in os_):>9.0f}{max(o.overrun for o in os_):>11.2f}"
        )
    worst = max(outcomes, key=lambda o: o.overrun / (0.1 * o.limit + 2.0))
    allowed = 0.1 * worst.limit + 2.0
    most = max(outcomes, key=lambda o: o.overrun)
    lines.append(f"largest overrun: {most.overrun:.2f} s past the {most.limit:g} s limit "
                 f"({most.row.id}); closest to its allowance: {worst.overrun:.2f} s past "
                 f"{worst.limit:g} s ({worst.row.id}; allowed 10% + 2 s = {allowed:.1f} s: "
                 f"{'ok' if worst.overrun <= allowed else 'EXCEEDED'})")
    errors = [o for o in outcomes if o.verdict == "error"]
    if errors:
        lines.append(f"{len(errors)} instance(s) ended in error: their times say nothing "
                     "about the limit")
    return "\n".join(lines)


def peer_summary(rev: str, ours: list[Outcome], peer: list[Outcome]) -> str:
    """The peer commit's score, and the time ratio on the instances both solve."""
    both = [(a, b) for a, b in zip(ours, peer, strict=True) if a.solved and b.solved]
    t_ours = sum(a.seconds for a, _ in both)
    t_peer = sum(b.seconds for _, b in both)
    ratio = f"{t_ours / t_peer:.3f}" if t_peer > 0 else "-"
    return (f"peer {rev}: {sum(o.solved for o in peer)}/{len(peer)} solved, "
            f"{sum(o.wrong for o in peer)} wrong, {sum(o.seconds for o in peer):.1f} s in all; "
            f"on the {len(both)} both solve: this tree {t_ours:.1f} s, peer {t_peer:.1f} s, "
            f"ratio {ratio}")


def _print(o: Outcome, who: str = "") -> None:
    mark = "WRONG" if o.wrong else ("ok" if o.solved else "-")
    ab = f"{o.row.abcrown_time:.2f}" if o.row.abcrown_time is not None else "-"
    name = f"{o.row.id} [{who}]" if who else o.row.id
    print(f"{name:<42}{o.row.expected:>9}{o.verdict:>9}{o.seconds:>8.2f}{ab:>9}"
          f"{o.peak_mb:>7.0f}  {mark:<5} {o.witness}", flush=True)


def run_all(rows: list[Row], scale: float, extra: list[str], jobs: int,
            peer: Path | None = None) -> tuple[list[Outcome], list[Outcome]]:
    """Every row's outcome (manifest order), ``jobs`` instances at a time, and with a
    ``peer`` tree the peer's outcomes too (its runs interleaved with this tree's,
    alternating which goes first); each line is printed as its instance ends."""
    tasks = []  # (row position, tree)
    for k in range(len(rows)):
        trees = [ROOT] if peer is None else ([ROOT, peer] if k % 2 == 0 else [peer, ROOT])
        tasks += [(k, t) for t in trees]
    done: dict[tuple[int, Path], Outcome] = {}

    def finish(k: int, tree: Path, o: Outcome) -> None:
        done[k, tree] = o
        _print(o, "" if peer is None else ("peer" if tree == peer else "this"))

    if jobs == 1:
        for k, tree in tasks:
            finish(k, tree, run_one(rows[k], scale, extra, tree))
    else:
        from concurrent.futures import ThreadPoolExecutor, as_completed

        with ThreadPoolExecutor(max_workers=jobs) as pool:  # each thread waits on a process
            futures = {pool.submit(run_one, rows[k], scale, extra, t): (k, t) for k, t in tasks}
            for f in as_completed(futures):
                finish(*futures[f], f.result())
    ours = [done[k, ROOT] for k in range(len(rows))]
    return ours, ([] if peer is None else [done[k, peer] for k in range(len(rows))])


def peer_tree(rev: str, into: Path) -> Path:
    """This repository's commit ``rev``, extracted under ``into``."""
    tree = into / "peer"
    tree.mkdir()
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("manifest", type=Path)
    ap.add_argument("--filter", help="only this benchmark (e.g. acasxu, mnist_fc_2022)")
    ap.add_argument("--ids", nargs="*", help="only these instance ids")
    ap.add_argument("--timeout-scale", type=float, default=1.0)
    ap.add_argument("--csv", type=Path, help="write per-instance results here")
    ap.add_argument("--verify-args", default="",
                    help='extra arguments for verinet verify, e.g. "--complete relu-bab"')
    ap.add_argument("--jobs", type=int, default=1,
                    help="instances run at once, one process each (default 1)")
    ap.add_argument("--peer", metavar="REV",
                    help="also run this commit on every instance, interleaved (module doc)")
    args = ap.parse_args(argv)
    if args.jobs < 1:
        print("--jobs must be at least 1", file=sys.stderr)
        return 2
    if not args.manifest.is_file():
        print(f"manifest not found: {args.manifest}", file=sys.stderr)
        return 2
    rows = read_manifest(args.manifest)
    if args.filter:
        rows = [r for r in rows if r.benchmark == args.filter]
    if args.ids:
        rows = [r for r in rows if r.id in set(args.ids)]
    print(f"{'id':<42}{'expected':>9}{'got':>9}{'time_s':>8}{'abcrown':>9}{'MB':>7}  mark"
          "  witness")
    extra = shlex.split(args.verify_args)
    if args.jobs > 1:  # one core per instance unless told otherwise
        for flag in ("--workers", "--threads"):
            if flag not in extra:
                extra = [flag, "1", *extra]
    with tempfile.TemporaryDirectory() as tmp:
        peer = None if args.peer is None else peer_tree(args.peer, Path(tmp))
        outcomes, peer_outcomes = run_all(rows, args.timeout_scale, extra, args.jobs, peer)
    if args.csv:
        with args.csv.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["id", "benchmark", "expected", "verdict", "seconds", "peak_mb", "exit",
                        "witness"])
            for o in outcomes:
                w.writerow([o.row.id, o.row.benchmark, o.row.expected, o.verdict,
                            f"{o.seconds:.3f}", f"{o.peak_mb:.1f}", o.exit_code, o.witness])
    print()
    print(summarise(outcomes))
    if args.peer is not None:
        print(peer_summary(args.peer, outcomes, peer_outcomes))
    return 1 if any(o.wrong for o in outcomes + peer_outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
