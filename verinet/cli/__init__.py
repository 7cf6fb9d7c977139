"""Command line: ``verinet verify MODEL.onnx PROPERTY.vnnlib [--timeout S] [--out FILE]``,
``verinet certify [MODEL.onnx] --data FILE --eps E [--radius]`` (see
:mod:`verinet.cli.certify`) and ``verinet pac [MODEL.onnx] --data FILE --eps E [--radius]``
(DeepPAC, see :mod:`verinet.cli.pac`); ``verinet selftest`` runs every engine on planted
counterexamples and their safe twins (:mod:`verinet.cli.selftest`).
``verinet smooth [MODEL.onnx] --sigma S --data FILE`` runs randomized smoothing's CERTIFY
or PREDICT (probabilistic, for the smoothed classifier; :mod:`verinet.cli.smooth`).
``verinet advgan train|attack`` trains an AdvGAN perturbation generator and attacks with
it (:mod:`verinet.cli.advgan`).

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

One module per command: :mod:`~verinet.cli.verify`, :mod:`~verinet.cli.certify`,
:mod:`~verinet.cli.pac`, :mod:`~verinet.cli.estimate` (``clever``, ``roby``),
:mod:`~verinet.cli.study`, :mod:`~verinet.cli.smooth`, :mod:`~verinet.cli.advgan`,
:mod:`~verinet.cli.selftest`; :mod:`~verinet.cli.samples` is
the per-sample loop ``certify`` and ``pac`` share, :mod:`~verinet.cli.options` the
argparse value types and the options declared by several commands.  Each is imported
when the parser is built or its command runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

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
    from verinet.cli import (
        advgan,
        certify,
        estimate,
        pac,
        records,
        selftest,
        smooth,
        study,
        verify,
    )

    p = _Parser(prog="verinet", description=__doc__.split("\n")[0])
    p.add_argument("--version", action="version", version=f"verinet {__version__}")
    common = _Parser(add_help=False)
    common.add_argument("-v", "--verbose", action="count", default=0, help="-v info, -vv debug")
    common.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = p.add_subparsers(dest="command", required=True)
    verify.add_parser(sub, common)
    certify.add_parser(sub, common)
    estimate.add_parsers(sub, common)
    pac.add_parser(sub, common)
    study.add_parser(sub, common)
    smooth.add_parser(sub, common)
    selftest.add_parser(sub, common)
    advgan.add_parser(sub, common)
    records.add_parsers(sub, common)
    return p


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from verinet.cli.verify import error_out

    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        with terminate_raises():
            return _dispatch(args)
    except VerinetError as e:
        error_out(args)
        msg = " ".join(str(e).split())
        print(f"verinet: error: {msg}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt as e:
        code = exit_code(e)
        print(f"verinet: interrupted ({'SIGTERM' if code == EXIT_SIGTERM else 'SIGINT'})",
              file=sys.stderr)
        return code
    except Exception as e:  # an internal error: one line, never a verdict
        error_out(args)
        if args.debug:
            raise
        msg = " ".join(f"{type(e).__name__}: {e}".split())
        print(f"verinet: internal error: {msg} (rerun with --debug)", file=sys.stderr)
        return EXIT_INTERNAL


def _dispatch(args: argparse.Namespace) -> int:
    from verinet.cli.options import set_threads

    if args.command == "verify":
        from verinet.cli.verify import cmd_verify

        return cmd_verify(args)
    if args.command == "certify":
        from verinet.cli.certify import cmd_certify

        return cmd_certify(args)  # sets --threads itself, once a --ray start is under way
    if args.command == "pac":
        from verinet.cli.pac import cmd_pac

        return cmd_pac(args)  # sets --threads itself, once a --ray start is under way
    if args.command in ("clever", "roby"):
        from verinet.cli import estimate

        set_threads(args.threads)
        return estimate.cmd_clever(args) if args.command == "clever" else (
            estimate.cmd_roby(args))
    if args.command == "study":
        from verinet.cli.study import cmd_study

        set_threads(args.threads)
        return cmd_study(args)
    if args.command in ("report", "merge"):
        from verinet.cli import records

        return records.cmd_report(args) if args.command == "report" else records.cmd_merge(args)
    if args.command == "smooth":
        from verinet.cli.smooth import cmd_smooth

        set_threads(args.threads)
        return cmd_smooth(args)
    if args.command == "advgan":
        from verinet.cli.advgan import cmd_advgan

        set_threads(args.threads)
        return cmd_advgan(args)
    if args.command == "selftest":
        from verinet.cli.selftest import cmd_selftest

        set_threads(args.threads)
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
