"""Command line: ``verinet verify MODEL.onnx PROPERTY.vnnlib [--timeout S] [--out FILE]``,
``verinet certify [MODEL.onnx] --data FILE --eps E [--radius]`` (see
:mod:`verinet.cli_certify`) and ``verinet pac [MODEL.onnx] --data FILE --eps E [--radius]``
(DeepPAC, see :mod:`verinet.cli_pac`); ``verinet selftest`` runs every engine on planted
counterexamples and their safe twins (:mod:`verinet.cli_selftest`).

Exit codes (documented in the README):

====  ==========================================================================
0     the run completed; the verdict (sat/unsat/unknown/timeout) is printed
1     unexpected internal error (one line; ``--debug`` shows the traceback)
2     bad input or usage: missing file, bad option value, shape mismatch
3     the ONNX model is corrupt or unsupported (every unsupported node listed)
4     the VNN-LIB property is malformed (with line and column)
70    a soundness check failed inside verinet (a bug; never reported as a verdict);
      ``selftest``: some engine answered wrong
130   interrupted by SIGINT (Ctrl-C); 143: by SIGTERM.  ``verify`` writes ``unknown``
      (``timeout`` once its limit has passed); ``certify``/``pac`` write and print
      every finished sample
====  ==========================================================================

On any error the ``verify`` result file (if requested) holds ``error``; a ``certify``
JSON report keeps the samples finished before the error.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any, NoReturn

from verinet.cliargs import network_spec as _network_spec
from verinet.cliargs import numbers as _floats
from verinet.cliargs import positive_number as _positive_float
from verinet.interrupts import EXIT_SIGTERM, exit_code, terminate_raises
from verinet.types import InputError, VerinetError

log = logging.getLogger("verinet")

EXIT_OK, EXIT_INTERNAL, EXIT_INPUT = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line with a hint, not the whole usage block (exit 2).  The
    subcommands' parsers are of this class too (argparse builds them with the parent's)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from verinet import __version__
    from verinet.verify.result import COMPLETE_CHOICES

    p = _Parser(prog="verinet", description=__doc__.split("\n")[0])
    p.add_argument("--version", action="version", version=f"verinet {__version__}")
    common = _Parser(add_help=False)
    common.add_argument("-v", "--verbose", action="count", default=0, help="-v info, -vv debug")
    common.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = p.add_subparsers(dest="command", required=True)
    v = sub.add_parser("verify", parents=[common],
                       help="decide a VNN-LIB property (VNN-COMP result format)")
    v.add_argument("model", help="ONNX model (the first declared network of a 2.0 query)")
    v.add_argument("property", help="VNN-LIB property (describes the unsafe set)")
    v.add_argument("--network", action="append", default=[], type=_network_spec,
                   metavar="NAME=PATH",
                   help="ONNX file of a further network declared by a 2.0 query (repeatable)")
    v.add_argument("--timeout", type=_positive_float, default=300.0, help="seconds (default 300)")
    v.add_argument("--out", help="write the VNN-COMP result file here")
    v.add_argument("--mean", type=_floats, help="input normalisation mean (raw input space)")
    v.add_argument("--std", type=_floats, help="input normalisation std")
    v.add_argument("--backend", choices=("highs", "pulp"), default="highs", help="MILP solver")
    v.add_argument("--complete",
                   choices=COMPLETE_CHOICES, default="auto",
                   help="complete search strategy (default: chosen from the instance; "
                        "graph-bab: branch and bound on the graph engine for any model)")
    v.add_argument("--seed", type=int, default=0, help="random seed (attacks)")
    v.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads (default 1: small tensors run fastest so)")
    v.add_argument("--workers", type=int, default=0,
                   help="processes for the star-set search (default 0: every usable core; "
                        "1 makes sat witnesses reproducible)")
    v.add_argument("--no-check", action="store_true",
                   help="skip the IR-vs-ONNX equivalence check on load")
    from verinet.cli_certify import add_parser as add_certify

    add_certify(sub, common, _floats)
    from verinet.cli_estimate import add_parsers as add_estimates

    add_estimates(sub, common, _floats)
    from verinet.cli_pac import add_parser as add_pac

    add_pac(sub, common, _floats)
    from verinet.cli_study import add_parser as add_study

    add_study(sub, common, _floats)
    from verinet.cli_selftest import add_parser as add_selftest

    add_selftest(sub, common)
    return p


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def _write_out(path: str | None, text: str) -> None:
    if path:
        from verinet.report.vnncomp import write_result_file

        write_result_file(path, text)


def _error_out(args: argparse.Namespace) -> None:
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


def _set_threads(n: int) -> None:
    if n < 1:
        raise InputError(f"--threads must be at least 1, got {n}")
    import torch

    torch.set_num_threads(n)


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


def _run_verify(args: argparse.Namespace, start: float, read: dict[str, Any]) -> Any:
    """Load the property and the model and verify (the part an interrupt may cut)."""
    from verinet import api
    from verinet.verify.deadline import Deadline
    from verinet.verify.portfolio import VerifyOptions
    from verinet.verify.star import StarOptions

    _set_threads(args.threads)
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


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        with terminate_raises():
            return _dispatch(args)
    except VerinetError as e:
        _error_out(args)
        msg = " ".join(str(e).split())
        print(f"verinet: error: {msg}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt as e:
        code = exit_code(e)
        print(f"verinet: interrupted ({'SIGTERM' if code == EXIT_SIGTERM else 'SIGINT'})",
              file=sys.stderr)
        return code
    except Exception as e:  # an internal error: one line, never a verdict
        _error_out(args)
        if args.debug:
            raise
        msg = " ".join(f"{type(e).__name__}: {e}".split())
        print(f"verinet: internal error: {msg} (rerun with --debug)", file=sys.stderr)
        return EXIT_INTERNAL


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "verify":
        return cmd_verify(args)
    if args.command == "certify":
        from verinet.cli_certify import cmd_certify

        _set_threads(args.threads)
        return cmd_certify(args)
    if args.command == "pac":
        from verinet.cli_pac import cmd_pac

        _set_threads(args.threads)
        return cmd_pac(args)
    if args.command in ("clever", "roby"):
        from verinet import cli_estimate

        _set_threads(args.threads)
        return cli_estimate.cmd_clever(args) if args.command == "clever" else (
            cli_estimate.cmd_roby(args))
    if args.command == "study":
        from verinet.cli_study import cmd_study

        _set_threads(args.threads)
        return cmd_study(args)
    if args.command == "selftest":
        from verinet.cli_selftest import cmd_selftest

        _set_threads(args.threads)
        return cmd_selftest(args)
    raise InputError(f"unknown command {args.command}")


def run() -> None:
    """Console entry point: :func:`main`, then a fast exit.  Tearing the interpreter down
    after torch was imported takes about 0.4 s (module finalisation), a sizeable share of
    a short ``verinet verify``.  Every output file is written and closed by ``main``
    (``with`` blocks, worker pools joined), so once the logging handlers and the standard
    streams are flushed the process ends with ``os._exit``."""
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
