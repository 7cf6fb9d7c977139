"""What the per-sample commands (``verinet certify``, ``verinet pac``) share: the model
and data options, resolving the bundled example, the progress bar and the report
outputs (checked before any work; JSON rewritten and a table row printed after every
sample; CSV, summary and plot at the end, or at an interrupt from what finished)."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from verinet.cli.options import (
    add_layout,
    add_model_and_data,
    add_no_check,
    add_normalisation,
    add_selection,
    add_threads,
)
from verinet.types import InputError

log = logging.getLogger("verinet")


def add_sample_options(c: argparse.ArgumentParser, *, mean_help: str = "",
                       plot_help: str) -> None:
    """``MODEL``, ``--data``, sample selection, normalisation, outputs and run options."""
    add_model_and_data(c)
    add_selection(c)
    add_normalisation(c, mean="input normalisation mean (raw input space; one value, or one "
                      "per channel, comma separated)" + mean_help,
                      std="input normalisation std (one, or per channel)")
    add_layout(c)
    c.add_argument("--out", help="JSON report (rewritten after every sample)")
    c.add_argument("--csv", help="CSV report")
    c.add_argument("--plot", help=plot_help)
    add_threads(c)
    add_no_check(c)
    c.add_argument("--no-progress", action="store_true", help="no progress bar")


def model_and_data(args: argparse.Namespace) -> tuple[str, str]:
    """The model and data paths; the bundled example when neither is given."""
    if args.model is None:
        from verinet import examples

        if args.data is None:
            log.info("no model given: using the bundled digits example")
            return str(examples.model_path()), str(examples.data_path())
        raise InputError("--data given without a model")
    if args.data is None:
        raise InputError("--data FILE is required with a model")
    return args.model, args.data


def eps_and_inputs(args: argparse.Namespace) -> tuple[float | None, Any, Any, str, str]:
    """``(eps, model, samples, model path, data path)`` from the options: ``--eps`` and/or
    ``--radius`` required, the model loaded (normalisation, equivalence check), the
    samples read and checked against it."""
    from verinet import api
    from verinet.data import load_samples, validate_eps

    if args.eps is None and not args.radius:
        if args.model is not None or args.data is not None:
            raise InputError("give --eps E, --radius, or both")
        # The bare command: the bundled example's radii, on its first ten samples.
        args.radius = True
        if args.samples is None:
            args.samples = 10
        log.info("no --eps or --radius: computing the radii of %d bundled samples",
                 args.samples)
    eps = None if args.eps is None else validate_eps(args.eps)
    check_sample_outputs(args)
    model_path, data_path = model_and_data(args)
    model = api.load_model(model_path, mean=args.mean, std=args.std, check=not args.no_check)
    data = load_samples(data_path, n_inputs=model.n_inputs, n_classes=model.n_outputs,
                        scale=args.scale, samples=args.samples, start=args.start,
                        layout=args.layout, input_shape=model.network.input_shape)
    return eps, model, data, model_path, data_path


def progress(args: argparse.Namespace, total: int, desc: str) -> Any:
    """A tqdm wrapper for the sample loop (None with ``--no-progress``)."""
    if args.no_progress:
        return None
    from tqdm import tqdm

    def wrap(it: Any) -> Any:
        return tqdm(it, total=total, desc=desc, unit="sample", file=sys.stderr,
                    disable=None, leave=False)

    return wrap


def check_sample_outputs(args: argparse.Namespace) -> None:
    """Every output path (``--out``, ``--csv``, ``--plot``) checked before any work."""
    from verinet.report.paths import check_outputs

    check_outputs((("--out", args.out), ("--csv", args.csv), ("--plot", args.plot)))


class SampleSink:
    """The per-sample callback of the CLI loops: keeps the latest report, rewrites
    ``--out`` and prints the newest rows on stdout as samples finish (also when stdout
    is not a terminal, flushed; through tqdm when a progress bar is drawn)."""

    def __init__(self, args: argparse.Namespace, pac: bool) -> None:
        from verinet.report.certify import TableStream

        self.args = args
        self.table = TableStream(pac)
        self.report: Any = None
        self._printed = 0

    def __call__(self, report: Any) -> None:
        from verinet.report import certify as rep

        self.report = report
        self._write(self._rows(report))  # first: a failing write cannot hide the row
        if self.args.out is not None:
            rep.write_json(report, self.args.out)

    def _rows(self, report: Any) -> str:
        """The rows not printed yet (after the header, the first time)."""
        text = "" if self._printed else self.table.header()
        text += "".join(self.table.row(r) for r in report.samples[self._printed:])
        self._printed = len(report.samples)
        return text

    def _write(self, text: str) -> None:
        if self.args.no_progress:
            sys.stdout.write(text)
        else:
            from tqdm import tqdm

            tqdm.write(text.rstrip("\n"), file=sys.stdout)
        sys.stdout.flush()

    def finish(self, report: Any) -> None:
        """The final JSON and CSV, the summary on stdout, then the plot."""
        from verinet.report import certify as rep

        args = self.args
        sys.stdout.write(self._rows(report))
        if args.out is not None:
            rep.write_json(report, args.out)
        if args.csv is not None:
            rep.write_csv(report, args.csv)
        sys.stdout.write("\n" + rep.format_summary(report))
        sys.stdout.flush()
        if args.plot is not None:
            from verinet.report.plots import plot_report

            plot_report(report, args.plot)


def run_samples(args: argparse.Namespace, pac: bool, loop: Any) -> int:
    """Run ``loop(sink)`` (the certify or pac dataset loop, calling ``sink`` after every
    sample) and write the outputs.  On an interrupt every finished sample is kept: the
    outputs are written from the report so far and the interrupt goes on to the exit."""
    sink = SampleSink(args, pac)
    try:
        report = loop(sink)
    except KeyboardInterrupt:
        if sink.report is not None:
            n = len(sink.report.samples)
            log.warning("interrupted: writing the %d finished sample(s)", n)
            sink.finish(sink.report)
        raise
    sink.finish(report)
    return 0
