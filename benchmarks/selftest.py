"""The full planted-counterexample self-test: every engine on >= 200 instances.

    python3 benchmarks/selftest.py [--instances 240] [--timeout 5] [--jobs 2] \
        [--out benchmarks/results/selftest]

Runs ``verinet selftest`` in ``--jobs`` processes over consecutive slices of the
instance sequence (``generate(n, seed)`` builds twin pair ``k`` from seed ``seed + k``
with family and twin kind cycling in ``k``, so slices of whole cycles together are
exactly the instances of one run), merges their JSON reports and
writes ``selftest.json`` (every outcome), ``outcomes.csv`` and ``table.txt`` (the
per-engine table, then planted counterexamples found per engine and family) into
``--out``.  Exit 70 if any engine answered wrong, 1 if one crashed.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("benchmarks.selftest")


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--instances", type=int, default=240)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per engine and instance")
    p.add_argument("--jobs", type=int, default=2, help="processes (default 2)")
    p.add_argument("--engines", help="comma list (default: all)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "selftest")
    return p.parse_args(argv)


def _slices(n_pairs: int, jobs: int) -> list[tuple[int, int]]:
    """Slices of whole cycles (every family with every twin pair): a slice that starts at
    pair ``k0`` with seed ``seed + k0`` then builds the same instances as one run."""
    from verinet.selftest.planted import FAMILIES, TWINS

    cycle = len(FAMILIES) * len(TWINS)
    step = cycle * -(-n_pairs // (jobs * cycle))
    return [(k, min(n_pairs, k + step)) for k in range(0, n_pairs, step)]


def _family_table(outcomes: list[dict], engines: list[str]) -> str:
    families = sorted({o["family"] for o in outcomes})
    head = f"{'sat found':<18}" + "".join(f"{f:>10}" for f in families)
    lines = [head, "-" * len(head)]
    for e in engines:
        cells = []
        for f in families:
            mine = [o for o in outcomes if o["engine"] == e and o["family"] == f
                    and o["truth"] == "sat" and o["score"] != "n/a"]
            found = sum(o["score"] == "right" for o in mine)
            cells.append(f"{found}/{len(mine)}" if mine else "n/a")
        lines.append(f"{e:<18}" + "".join(f"{c:>10}" for c in cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from verinet.selftest.run import Outcome, SelftestReport

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = parse(argv)
    n_pairs = -(-args.instances // 2)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        procs = []
        for j, (k0, k1) in enumerate(_slices(n_pairs, max(1, args.jobs))):
            cmd = [sys.executable, "-m", "verinet.cli", "selftest", "--seed",
                   str(args.seed + k0), "--instances", str(2 * (k1 - k0)), "--timeout",
                   str(args.timeout), "--out", f"{tmp}/{j}.json"]
            if args.engines:
                cmd += ["--engines", args.engines]
            log.info("slice %d: pairs %d-%d", j, k0, k1 - 1)
            procs.append(subprocess.Popen(cmd, cwd=ROOT))
        codes = [p.wait() for p in procs]
        if any(c not in (0, 1, 70) for c in codes):
            log.error("a slice failed: exit codes %s", codes)
            return 1
        parts = [json.loads(Path(f"{tmp}/{j}.json").read_text()) for j in range(len(procs))]
    wall = time.perf_counter() - t0
    outcomes = [Outcome(**o) for part in parts for o in part["outcomes"]]
    engines = [e["engine"] for e in parts[0]["engines"]]
    rep = SelftestReport(tuple(outcomes), tuple(engines))
    meta = {"command": "python3 " + " ".join(["benchmarks/selftest.py", *(argv or sys.argv[1:])]),
            "seed": args.seed, "timeout_s": args.timeout, "jobs": args.jobs,
            "wall_s": round(wall, 1)}
    (args.out / "selftest.json").write_text(json.dumps({**meta, **rep.to_json()}, indent=1)
                                            + "\n")
    (args.out / "outcomes.csv").write_text(rep.csv())
    text = (f"{meta['command']}\n{rep.n_instances} instances, timeout {args.timeout} s per "
            f"engine, {args.jobs} processes, {wall:.0f} s wall\n\n{rep.table()}\n\n"
            f"{_family_table([o.__dict__ for o in outcomes], engines)}\n")
    (args.out / "table.txt").write_text(text)
    print(text)
    return 70 if rep.wrong else 1 if rep.errors else 0


if __name__ == "__main__":
    sys.exit(main())
