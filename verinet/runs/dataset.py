"""A whole data file through one :class:`~verinet.runs.sample.SampleJob`: the dataset loop
of ``verinet certify`` and ``verinet pac`` (and of the Python API).

:func:`run_dataset` picks the samples (a ``--shard``), skips those a resumed record file
already holds, runs the rest on a backend (:class:`Backend`: in this process, ``--jobs N``
local workers, or Ray), appends each finished sample to the record file (the driver alone
writes it), and calls ``on_sample`` with the report so far after every sample (samples in
the order they finished).  The report it returns holds every finished sample -- resumed
ones included -- in index order.  An interrupt propagates; everything finished is
already in the records and in the last report given to ``on_sample``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from verinet.certify.engine import CertifyOptions
from verinet.certify.result import CertifyReport, SampleReport
from verinet.estimates.clever import CleverOptions
from verinet.interrupts import deferred_signals
from verinet.ir.graph import Network
from verinet.pac.run import PacRun
from verinet.pac.sampling import FeatureMap
from verinet.pac.scenario import PacOptions
from verinet.pac.search import RadiusSearch
from verinet.report.records import (
    RecordHeader,
    RecordSet,
    RecordWriter,
    Shard,
    file_sha256,
    sample_reports,
)
from verinet.runs.backend import Backend
from verinet.runs.local import Died, LocalPool
from verinet.runs.sample import Item, SampleJob, SampleRunner, error_report
from verinet.runs.source import ModelSource
from verinet.types import InputError
from verinet.verify.witness import OnnxEval

if TYPE_CHECKING:
    from verinet.runs.local import LocalStart
    from verinet.runs.ray_start import RayStart

    WarmStart = LocalStart | RayStart

log = logging.getLogger(__name__)

#: Wraps the stream of finished samples, given its length (a progress bar: count, ETA).
Progress = Callable[[Iterable[Any], int], Iterable[Any]]


def execute(job: SampleJob, runner: SampleRunner, source: ModelSource | None,
            items: list[Item], backend: Backend, warm: WarmStart | None = None
            ) -> Iterator[SampleReport]:
    """Every item's report, in the order they finish: in this process on ``runner``, or on
    the backend's workers (a sample whose worker died twice becomes an ``error``
    report).  ``warm``: workers started ahead (Ray actors,
    :class:`~verinet.runs.ray_start.RayStart`, or local ones,
    :class:`~verinet.runs.local.LocalStart`); they run the items, however few."""
    pool: Any = None
    if warm is not None:
        pool = warm.ready()
        pool.task_timeout = backend.task_timeout
    elif backend.ray is not None or (backend.jobs or 1) > 1 and len(items) > 1:
        if source is None:
            raise InputError("worker processes need the model's file (a ModelSource)")
        if backend.ray is not None:
            from verinet.runs.ray_pool import RayPool

            pool = RayPool(source, backend.jobs, backend.threads, backend.task_timeout,
                           backend.ray)
        else:
            pool = LocalPool(source, backend.jobs or 1, backend.threads, backend.task_timeout)
    if pool is None:
        for item in items:
            yield runner.attempt(job, item)
        return
    runs = pool.run(items, job)
    for out in runs:
        if isinstance(out, Died):
            yield error_report(runner.network, out.item, job.eps, out.reason)
        else:
            yield out


def _items(x: np.ndarray, y: np.ndarray, indices: np.ndarray, positions: Sequence[int],
           skip: set[int]) -> list[Item]:
    return [Item(int(indices[p]), x[p], int(y[p])) for p in positions
            if int(indices[p]) not in skip]


def check_data(network: Network, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y)
    if x.ndim != 2 or x.shape[1] != network.n_inputs:
        raise InputError(f"data has shape {x.shape}, the model needs (N, {network.n_inputs})")
    if y.shape != (x.shape[0],):
        raise InputError(f"{y.size} labels for {x.shape[0]} samples")
    return x, y


def run_dataset(job: SampleJob, network: Network, onnx_eval: OnnxEval | None, x: np.ndarray,
                y: np.ndarray, *, indices: np.ndarray | None = None,
                source: ModelSource | None = None, backend: Backend = Backend(),
                records: RecordWriter | None = None, resumed: RecordSet | None = None,
                shard: Shard | None = None, model_name: str = "", data_name: str = "",
                on_sample: Callable[[CertifyReport], None] | None = None,
                progress: Progress | None = None, warm: WarmStart | None = None
                ) -> CertifyReport:
    """Run ``job`` on the rows of ``x`` (raw flat inputs, labels ``y``; module doc).
    ``warm``: the workers the caller started before loading the model (``--ray``, or
    ``--jobs N``; the caller closes them)."""
    x, y = check_data(network, x, y)
    idx = np.arange(x.shape[0]) if indices is None else np.asarray(indices)
    positions = list(range(x.shape[0])) if shard is None else shard.select(x.shape[0])
    wanted = {int(idx[p]) for p in positions}
    previous = [] if resumed is None else [
        r for r in sample_reports(resumed.samples, str(records.path if records else ""))
        if r.index in wanted]
    items = _items(x, y, idx, positions, {r.index for r in previous})
    runner = SampleRunner(network, onnx_eval)  # views derived once, here
    unsupported = runner.views.graph.unsupported if job.command == "certify" else ()
    if unsupported:
        log.warning("no bound engine for %d node(s) of this network (%s): no certified "
                    "lower bounds", len(unsupported),
                    "; ".join(f"{op} '{n}'" for op, n, _ in unsupported[:3]))
    if previous:
        log.info("resuming: %d sample(s) already recorded, %d to run", len(previous),
                 len(items))
    settings = job.settings(network.n_inputs)
    t0 = time.monotonic()
    done = list(previous)

    def report(samples: Iterable[SampleReport]) -> CertifyReport:
        return CertifyReport(model_name, data_name, tuple(samples), job.eps, job.tolerance,
                             job.seed, settings, time.monotonic() - t0)

    if done and on_sample is not None:
        on_sample(report(done))
    stream: Iterable[SampleReport] = execute(job, runner, source, items, backend, warm)
    if progress is not None:
        stream = progress(stream, len(items))
    for rep in stream:
        # An interrupt waits until the sample is in the records and in the report given
        # to on_sample: both always hold the same finished samples.
        with deferred_signals():
            if records is not None:
                records.append(rep)
            done.append(rep)
            if on_sample is not None:
                on_sample(report(done))
    order = {int(idx[p]): k for k, p in enumerate(positions)}
    return report(sorted(done, key=lambda r: order.get(r.index, len(order))))


# ----------------------------------------------------------------------------- headers


def run_header(job: SampleJob, *, model_path: str, mean: object, std: object, data_path: str,
               selection: dict[str, object], indices: np.ndarray, n_inputs: int,
               shard: Shard | None, model_name: str = "", data_name: str = "") -> RecordHeader:
    """The record header of a run: its identity (everything that changes results: the
    command, the model's and data's bytes, normalisation, the sample selection and every
    option) and what the derived report needs."""
    import hashlib

    from verinet import __version__

    settings = dict(job.settings(n_inputs))
    identity = {
        "command": job.command, "verinet": __version__,
        "model_sha256": file_sha256(model_path), "mean": mean, "std": std,
        "data_sha256": file_sha256(data_path), "selection": dict(selection),
        "indices_sha256": hashlib.sha256(np.asarray(indices, dtype=np.int64).tobytes()
                                         ).hexdigest(),
        "n": int(len(indices)), "eps": job.eps, "tolerance": job.tolerance, "seed": job.seed,
        "settings": settings,
    }
    report = {"model": model_name or model_path, "data": data_name or data_path,
              "eps": job.eps, "tolerance": job.tolerance, "seed": job.seed,
              "settings": settings}
    return RecordHeader(identity, report, shard)


# ----------------------------------------------------------------------------- API


def certify(network: Network, onnx_eval: OnnxEval | None, x: np.ndarray, y: np.ndarray,
            options: CertifyOptions, *, model_name: str = "", data_name: str = "",
            indices: np.ndarray | None = None,
            on_sample: Callable[[CertifyReport], None] | None = None,
            progress: Progress | None = None, pac: PacRun | None = None,
            clever: CleverOptions | None = None) -> CertifyReport:
    """Certify every row of ``x`` (raw flat inputs) with labels ``y`` in this process (and
    run DeepPAC / CLEVER beside each sandwich, see :mod:`verinet.runs.sample`)."""
    job = SampleJob("certify", certify=options, pac=pac, clever=clever)
    return run_dataset(job, network, onnx_eval, x, y, indices=indices, model_name=model_name,
                       data_name=data_name, on_sample=on_sample, progress=progress)


def pac_certify(network: Network, onnx_eval: OnnxEval | None, x: np.ndarray, y: np.ndarray,
                options: PacOptions, features: FeatureMap, *, eps: float | None = None,
                search: RadiusSearch | None = None, domain: tuple[float, float] = (0.0, 1.0),
                model_name: str = "", data_name: str = "", indices: np.ndarray | None = None,
                on_sample: Callable[[CertifyReport], None] | None = None,
                progress: Progress | None = None) -> CertifyReport:
    """DeepPAC on every row of ``x`` (raw flat inputs) with labels ``y``, in this process."""
    job = SampleJob("pac", pac=PacRun(options, features, search), pac_eps=eps,
                    pac_domain=domain)
    return run_dataset(job, network, onnx_eval, x, y, indices=indices, model_name=model_name,
                       data_name=data_name, on_sample=on_sample, progress=progress)
