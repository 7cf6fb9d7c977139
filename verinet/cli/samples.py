"""What the per-sample commands (``verinet certify``, ``verinet pac``) share: the model
and data options, resolving the bundled example, the progress bar and the report
outputs (checked before any work; a table row printed as each sample finishes; JSON, CSV,
summary and plot at the end, or at an interrupt from what finished), and the dataset-run
options (``--records``, ``--resume``, ``--jobs``, ``--shard``, ``--ray``)."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from verinet.cli.options import (
    add_layout,
    add_model_and_data,
    add_no_check,
    add_normalisation,
    add_outputs,
    add_selection,
    add_threads,
    number,
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
    add_outputs(c, out="JSON report (at the end, and kept current during the run without "
                "--records)", plot=plot_help)
    add_threads(c)
    add_no_check(c)
    c.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_run_options(c)


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
    from verinet.data import load_samples

    eps = eps_option(args)
    check_sample_outputs(args)
    model_path, data_path = model_and_data(args)
    model = api.load_model(model_path, mean=args.mean, std=args.std, check=not args.no_check)
    data = load_samples(data_path, n_inputs=model.n_inputs, n_classes=model.n_outputs,
                        scale=args.scale, samples=args.samples, start=args.start,
                        layout=args.layout, input_shape=model.network.input_shape)
    return eps, model, data, model_path, data_path


@contextmanager
def warm_start(args: argparse.Namespace) -> Iterator[Any]:
    """The workers started before the block imports the engines, loads the model and
    reads the data, and stopped at its end: with ``--ray`` the cluster connection and its
    actors, begun in the background (:class:`~verinet.runs.ray_start.RayStart`); with
    ``--jobs N > 1`` (and more than one sample asked for) N local workers
    (:class:`~verinet.runs.local.LocalStart`).  None otherwise.  The options are checked
    first, so a bad option starts nothing."""
    if getattr(args, "ray", None) is None and getattr(args, "jobs", 1) == 1:
        yield None
        return
    eps_option(args)
    check_sample_outputs(args)
    model_path, _ = model_and_data(args)
    be = backend(args)
    source = model_source(args, model_path)
    start: Any = None
    if args.ray is not None:
        from verinet.runs.ray_start import RayStart

        start = RayStart(source, be.jobs, be.threads, args.ray)
    elif (be.jobs or 1) > 1 and (args.samples is None or args.samples > 1):
        from verinet.runs.local import LocalStart

        start = LocalStart(source, be.jobs, be.threads)
    try:
        yield start
    finally:
        if start is not None:
            start.close()


def model_source(args: argparse.Namespace, model_path: str) -> Any:
    """How workers load the model: the path with the normalisation and check options."""
    from verinet.runs.source import ModelSource

    return ModelSource(model_path, _tuple(args.mean), _tuple(args.std), not args.no_check)


def eps_option(args: argparse.Namespace) -> float | None:
    """``--eps`` validated; without ``--eps`` and ``--radius`` the bare command computes
    the bundled example's radii on its first ten samples (with a model or data given:
    an input error)."""
    from verinet.data import validate_eps

    if args.eps is None and not args.radius:
        if args.model is not None or args.data is not None:
            raise InputError("give --eps E, --radius, or both")
        # The bare command: the bundled example's radii, on its first ten samples.
        args.radius = True
        if args.samples is None:
            args.samples = 10
        log.info("no --eps or --radius: computing the radii of %d bundled samples",
                 args.samples)
    return None if args.eps is None else validate_eps(args.eps)


def progress(args: argparse.Namespace, desc: str) -> Any:
    """A tqdm wrapper for the stream of finished samples (None with ``--no-progress``):
    count, rate and ETA on stderr, whatever backend runs the samples."""
    if args.no_progress:
        return None
    from tqdm import tqdm

    def wrap(it: Any, total: int) -> Any:
        return tqdm(it, total=total, desc=desc, unit="sample", file=sys.stderr,
                    disable=None, leave=False)

    return wrap


def check_sample_outputs(args: argparse.Namespace) -> None:
    """Every output path (``--out``, ``--csv``, ``--plot``, ``--records``) checked before
    any work, and the run options that need no model."""
    from verinet.report.paths import check_outputs

    check_outputs((("--out", args.out), ("--csv", args.csv), ("--plot", args.plot),
                   ("--records", args.records)))
    if args.resume and args.records is None:
        raise InputError("--resume needs --records PATH (the record file to continue)")
    backend(args)  # option values, before any work
    shard(args)


def add_run_options(c: argparse.ArgumentParser) -> None:
    """Records, resume, workers, shards and Ray (``verinet certify`` and ``verinet pac``)."""
    g = c.add_argument_group("dataset runs")
    g.add_argument("--records", metavar="PATH",
                   help="append every finished sample to this JSON Lines file (flushed and "
                   "fsynced per line; the reports are derived from it; see verinet report)")
    g.add_argument("--resume", action="store_true",
                   help="continue --records PATH: finished samples are skipped, an "
                   "interrupted one runs again; refused if the file is of another run")
    g.add_argument("--jobs", type=int,
                   help="local worker processes (default: the usable cores; 1: run in this "
                   "process)")
    g.add_argument("--shard", metavar="I/N",
                   help="only the I-th of N deterministic shares of the samples (0 <= I < N; "
                   "combine the shards' records with verinet merge)")
    g.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="run the samples on Ray: a local cluster of --jobs CPUs, or join the "
                   "cluster at ADDRESS (pip install \"verinet[ray]\")")
    g.add_argument("--task-timeout", type=number, metavar="S",
                   help="kill a sample's worker after S seconds and run it again once (default "
                   "for certify: 2 x --timeout + 60; pac: none)")


def backend(args: argparse.Namespace, default_timeout: float | None = None) -> Any:
    """The :class:`~verinet.runs.dataset.Backend` the options describe."""
    from verinet.runs.backend import Backend, usable_cores

    jobs = args.jobs
    if jobs is None and args.ray is None:
        jobs = usable_cores()
    task = args.task_timeout if args.task_timeout is not None else default_timeout
    return Backend(jobs=jobs, threads=args.threads, ray=args.ray, task_timeout=task)


def shard(args: argparse.Namespace) -> Any:
    from verinet.report.shard import Shard

    return None if args.shard is None else Shard.parse(args.shard)


class SampleSink:
    """The per-sample callback of the CLI loops: keeps the latest report and prints the
    rows of newly finished samples on stdout (also when stdout is not a terminal,
    flushed; through tqdm when a progress bar is drawn).  Without ``--records`` it also
    rewrites ``--out`` now and then -- whenever the time since the last write is at
    least 20 times what that write took, so the rewrites cost at most ~5% of the run
    however many samples there are; with ``--records`` the record file is the running
    store and the JSON is written at the end."""

    def __init__(self, args: argparse.Namespace, pac: bool) -> None:
        from verinet.report.certify import TableStream

        self.args = args
        self.table = TableStream(pac)
        self.report: Any = None
        self._printed: set[int] = set()
        self._header = False
        self._next_write = 0.0

    def __call__(self, report: Any) -> None:
        from verinet.report import certify as rep

        self.report = report
        self._write(self._rows(report))  # first: a failing write cannot hide the row
        if self.args.out is not None and self.args.records is None:
            now = time.monotonic()
            if now >= self._next_write:
                rep.write_json(report, self.args.out)
                spent = time.monotonic() - now
                self._next_write = now + 20.0 * spent

    def _rows(self, report: Any) -> str:
        """The rows not printed yet (after the header, the first time).  During the run
        samples are only ever appended, so the new ones are those past the count printed;
        the final report (index order) is checked sample by sample."""
        text = "" if self._header else self.table.header()
        self._header = True
        fresh = report.samples[len(self._printed):]
        if any(r.index in self._printed for r in fresh):  # reordered: the final report
            fresh = [r for r in report.samples if r.index not in self._printed]
        self._printed.update(r.index for r in fresh)
        return text + "".join(self.table.row(r) for r in fresh)

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


def run_job(args: argparse.Namespace, job: Any, model: Any, data: Any, model_path: str,
            data_path: str, *, default_task_timeout: float | None = None,
            warm: Any = None) -> int:
    """Run ``job`` on every selected sample (records, resume, shard and backend from the
    options) and write the outputs.  On an interrupt every finished sample is kept: the
    outputs are written from the report so far and the interrupt goes on to the exit."""
    from verinet.report.records import open_records
    from verinet.runs.dataset import run_dataset, run_header

    part = shard(args)
    be = backend(args, default_task_timeout)
    source = model_source(args, model_path)
    writer = resumed = None
    if args.records is not None:
        selection = {"start": args.start, "samples": args.samples, "scale": args.scale,
                     "layout": args.layout}
        header = run_header(job, model_path=model_path, mean=args.mean, std=args.std,
                            data_path=data_path, selection=selection, indices=data.indices,
                            n_inputs=model.n_inputs, shard=part)
        writer, resumed = open_records(args.records, header, resume=args.resume)
    sink = SampleSink(args, job.pac is not None)
    try:
        report = run_dataset(job, model.network, model.onnx_eval, data.x, data.y,
                             indices=data.indices, source=source, backend=be, records=writer,
                             resumed=resumed, shard=part, model_name=model_path,
                             data_name=data_path, on_sample=sink,
                             progress=progress(args, args.command), warm=warm)
    except (KeyboardInterrupt, Exception) as e:
        if sink.report is not None:
            n = len(sink.report.samples)
            if isinstance(e, KeyboardInterrupt):
                log.warning("interrupted: writing the %d finished sample(s)", n)
            else:  # the error itself is the one line the user sees
                log.info("stopped by an error: writing the %d finished sample(s)", n)
            try:
                sink.finish(sink.report)
            except Exception as w:  # noqa: BLE001 -- the first failure is the one to report
                log.info("could not write the finished samples: %s", w)
        raise
    finally:
        if writer is not None:
            writer.close()
    sink.finish(report)
    return 0


def _tuple(v: Any) -> tuple[float, ...] | None:
    return None if v is None else tuple(float(u) for u in v)
