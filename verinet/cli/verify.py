"""``verinet verify MODEL.onnx PROPERTY.vnnlib [--timeout S] [--out FILE]``: decide a
VNN-LIB property and print (and with ``--out`` write) the verdict in the VNN-COMP result
format.

A watchdog reports ``timeout`` (``timed-out`` for a VNN-LIB 2.0 query) and exits if the
engine overruns its limit; an interrupt is never a verdict (``timeout`` once the limit
has passed, else ``unknown``); on an error the result file holds ``error``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from verinet.cli import EXIT_OK
from verinet.cli.options import (
    add_backend,
    add_no_check,
    add_normalisation,
    add_seed,
    add_threads,
    network_spec,
    positive_number,
    set_threads,
)
from verinet.types import InputError, VerinetError

log = logging.getLogger("verinet")


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register the ``verify`` subcommand."""
    from verinet.verify.result import COMPLETE_CHOICES

    v = sub.add_parser("verify", parents=[common],
                       help="decide a VNN-LIB property (VNN-COMP result format)")
    v.add_argument("model", help="ONNX model (the first declared network of a 2.0 query)")
    v.add_argument("property", help="VNN-LIB property (describes the unsafe set)")
    v.add_argument("--network", action="append", default=[], type=network_spec,
                   metavar="NAME=PATH",
                   help="ONNX file of a further network declared by a 2.0 query (repeatable)")
    v.add_argument("--timeout", type=positive_number, default=300.0,
                   help="seconds (default 300)")
    v.add_argument("--out", help="write the VNN-COMP result file here")
    add_normalisation(v)
    add_backend(v)
    v.add_argument("--complete",
                   choices=COMPLETE_CHOICES, default="auto",
                   help="complete search strategy (default: chosen from the instance; "
                        "graph-bab: branch and bound on the graph engine for any model)")
    add_seed(v, help="random seed (attacks)")
    add_threads(v, help="torch intra-op threads (default 1: small tensors run fastest so)")
    v.add_argument("--workers", type=int, default=0,
                   help="processes for the star-set search (default 0: every usable core; "
                        "1 makes sat witnesses reproducible)")
    add_no_check(v)


def _write_out(path: str | None, text: str) -> None:
    if path:
        from verinet.report.vnncomp import write_result_file

        write_result_file(path, text)


def error_out(args: argparse.Namespace) -> None:
    """``verify`` marks its result file ``error`` (when it can be written: a bad ``--out``
    is refused before any work, and leaves nothing behind); ``certify`` keeps its JSON
    report (it holds every sample finished before the error)."""
    if args.command == "verify" and getattr(args, "out", None):
        with contextlib.suppress(VerinetError):
            _write_out(args.out, "error\n")


def _watchdog(seconds: float, out: str | None, read: dict[str, Any]) -> threading.Timer:
    """Hard stop: if the engine overruns, report ``timeout`` (``timed-out`` for a VNN-LIB
    2.0 query) and exit."""

    def fire() -> None:
        from verinet.report.vnncomp import verdict_word

        try:
            _write_out(out, verdict_word("timeout", read.get("query")) + "\n")
        finally:
            sys.stdout.write("timeout\n")
            sys.stdout.flush()
            os._exit(EXIT_OK)

    t = threading.Timer(seconds, fire)
    t.daemon = True
    t.start()
    return t


def cmd_verify(args: argparse.Namespace) -> int:
    from verinet.report.paths import check_outputs

    start = time.monotonic()
    if args.workers < 0:
        raise InputError(f"--workers must be at least 0, got {args.workers}")
    check_outputs([("--out", args.out)])  # before any work
    from verinet.report.vnncomp import format_result, verdict_word

    read: dict[str, Any] = {}  # the query, once read (its version names a timeout)
    timer = _watchdog(args.timeout * 1.05 + 1.0, args.out, read)
    try:
        result = _run_verify(args, start, read)
    except KeyboardInterrupt:
        # Never a verdict: ``timeout`` once the limit has passed, else ``unknown``.
        elapsed = time.monotonic() - start
        verdict = verdict_word("timeout" if elapsed >= args.timeout else "unknown",
                               read.get("query"))
        print(f"{verdict} (interrupted)  [{elapsed:.2f} s]", flush=True)
        with contextlib.suppress(VerinetError):
            _write_out(args.out, verdict + "\n")
        raise
    finally:
        timer.cancel()
    # The verdict is printed first: a failing write cannot hide it.
    detail = f" ({result.reason.value})" if result.vnncomp == "unknown" else ""
    print(f"{result.vnncomp}{detail}  [{result.seconds:.2f} s]", flush=True)
    if result.message:
        log.info("%s", result.message)
    _write_out(args.out, format_result(result, read.get("query")))
    return EXIT_OK


@contextlib.contextmanager
def _imports_frozen() -> Iterator[None]:
    """No garbage collection while the engines (torch, onnx, scipy) are imported, and their
    objects moved out of the collector's view afterwards (``gc.freeze``): they live as long
    as the process, yet every full collection walked them.  On ACAS Xu 1_1 property 2 the
    collector took 0.215 s of a 3.3 s run, 0.013 s with this.  Once per process: a caller
    that runs many verifications in one process (the tests) freezes only the first time,
    so whatever garbage exists at a later call stays collectable."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if gc.get_freeze_count() == 0:
            gc.freeze()
        if enabled:
            gc.enable()


def _run_verify(args: argparse.Namespace, start: float, read: dict[str, Any]) -> Any:
    """Load the property and the model and verify (the part an interrupt may cut)."""
    with _imports_frozen():
        from verinet import api
        from verinet.verify.deadline import Deadline
        from verinet.verify.portfolio import VerifyOptions
        from verinet.verify.star import StarOptions

    set_threads(args.threads)
    # Leave a little room for writing results inside the advertised limit.
    deadline = Deadline(max(0.1, args.timeout - 0.5), start)
    query = api.read_query(args.property)
    read["query"] = query
    prop = query.property
    if query.multi or args.network:
        from verinet.multinet import network_paths

        paths = network_paths(query, args.model, args.network, args.property)
        model = api.load_models(query, paths, mean=args.mean, std=args.std,
                                check=not args.no_check)
    else:
        model = api.load_model(args.model, mean=args.mean, std=args.std,
                               check=not args.no_check, input_box=prop.terms[0].box)
    options = VerifyOptions(complete=args.complete, milp_backend=args.backend,
                            seed=args.seed, star=StarOptions(workers=args.workers))
    return api.verify(model, prop, timeout=args.timeout, options=options, deadline=deadline,
                      threads=None)  # --threads is set above
