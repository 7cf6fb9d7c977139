"""``verinet selftest``: every engine on networks with planted counterexamples and
their provably safe twins (see :mod:`verinet.selftest`).

One line per instance as it finishes, then the per-engine table (right / wrong /
unknown / n/a / error, and how many planted counterexamples each engine found).  Exit
70 when any engine answers wrong (a soundness bug), 1 when an engine crashed, else 0.
``--out`` (JSON, rewritten atomically after every instance, so an interrupt keeps what
is finished) and ``--csv`` (one row per engine and instance) record the outcomes;
``--save DIR`` writes every instance's ONNX model and VNN-LIB property for other tools.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from verinet.cli.options import add_seed, add_threads, names, positive_number
from verinet.types import InputError

log = logging.getLogger("verinet")

EXIT_WRONG, EXIT_CRASH = 70, 1


def _registry() -> Any:
    """The engines by name, imported only when ``--engines`` is given (the help lists the
    light :data:`~verinet.selftest.names.ENGINE_NAMES`)."""
    from verinet.selftest.engines import ENGINES

    return ENGINES


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register the ``selftest`` subcommand."""
    from verinet.selftest.names import ENGINE_NAMES, FAMILIES

    p = sub.add_parser("selftest", parents=[common],
                       help="soundness self-test: every engine on planted counterexamples "
                            "and their safe twins (exit 70 on any wrong answer)")
    p.add_argument("--instances", type=int, default=24,
                   help="number of instances, rounded up to whole sat/unsat twins (24)")
    add_seed(p, help="generator seed (0)")
    p.add_argument("--timeout", type=positive_number, default=5.0,
                   help="seconds per engine and instance (5)")
    p.add_argument("--engines", type=names("engine", _registry),
                   help=f"comma list (default: all of {', '.join(ENGINE_NAMES)})")
    p.add_argument("--families", type=names("family", lambda: FAMILIES), default=FAMILIES,
                   help=f"comma list of network families (default {','.join(FAMILIES)})")
    p.add_argument("--out", help="JSON report (rewritten after every instance)")
    p.add_argument("--csv", help="CSV, one row per engine and instance")
    p.add_argument("--save", metavar="DIR",
                   help="also write each instance's .onnx and .vnnlib into DIR")
    add_threads(p)


def _save(directory: Path, inst: Any) -> None:
    import onnx

    try:
        onnx.save(inst.model, str(directory / f"{inst.name}.onnx"))
        (directory / f"{inst.name}.vnnlib").write_text(inst.vnnlib, encoding="utf-8")
    except OSError as e:
        raise InputError(f"--save {directory}: cannot write {inst.name}: "
                         f"{e.strerror or e}") from None


def _instance_line(k: int, n: int, inst: Any, mine: list[Any], seconds: float) -> str:
    counts = {s: sum(o.score == s for o in mine) for s in ("right", "wrong", "unknown",
                                                           "n/a", "error")}
    text = "  ".join(f"{s} {c}" for s, c in counts.items() if c or s == "wrong")
    return f"[{k}/{n}] {inst.name:<16} {inst.truth:<5}  {text}  ({seconds:.1f} s)"


def cmd_selftest(args: argparse.Namespace) -> int:
    from verinet.report.atomic import atomic_write
    from verinet.report.paths import check_outputs
    from verinet.selftest.engines import ENGINES
    from verinet.selftest.planted import generate
    from verinet.selftest.run import SelftestReport, run_instance

    if args.instances < 1:
        raise InputError(f"--instances must be at least 1, got {args.instances}")
    check_outputs([("--out", args.out), ("--csv", args.csv)])  # before any work
    save = Path(args.save) if args.save else None
    if save is not None and not save.is_dir():
        raise InputError(f"--save {save}: not an existing directory")
    engines = tuple(args.engines or ENGINES)
    instances = generate(args.instances, args.seed, tuple(args.families))
    log.info("selftest: %d instances x %d engines, %.3g s each", len(instances),
             len(engines), args.timeout)
    outcomes: list[Any] = []

    def report() -> SelftestReport:
        return SelftestReport(tuple(outcomes), engines)

    def write() -> None:
        rep = report()
        if args.out:
            meta = {"seed": args.seed, "timeout_s": args.timeout,
                    "families": list(args.families)}
            atomic_write(args.out, json.dumps({**meta, **rep.to_json()}, indent=1) + "\n")
        if args.csv:
            atomic_write(args.csv, rep.csv())

    try:
        for k, inst in enumerate(instances, 1):
            if save is not None:
                _save(save, inst)
            t0 = time.perf_counter()
            mine = list(run_instance(inst, engines, args.timeout, args.seed + k - 1))
            outcomes.extend(mine)
            print(_instance_line(k, len(instances), inst, mine, time.perf_counter() - t0),
                  flush=True)
            for o in mine:
                if o.score in ("wrong", "error"):
                    print(f"  {o.score.upper()}: {o.engine}: {o.verdict}; {o.note}",
                          flush=True)
            write()
    except KeyboardInterrupt:
        print(report().table(), flush=True)
        raise
    rep = report()
    print(rep.table(), flush=True)
    if rep.wrong:
        print(f"verinet selftest: {len(rep.wrong)} wrong answer(s): a soundness bug",
              file=sys.stderr)
        return EXIT_WRONG
    if rep.errors:
        print(f"verinet selftest: {len(rep.errors)} engine crash(es)", file=sys.stderr)
        return EXIT_CRASH
    return 0
