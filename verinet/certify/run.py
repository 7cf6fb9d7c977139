"""Certify a whole dataset: one :func:`~verinet.certify.engine.certify_sample` per sample.

``on_sample`` is called with the report built so far after every sample (the CLI writes
the JSON there, so an interruption or a later failure keeps what is already computed).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

import numpy as np

from verinet.certify.engine import CertifyOptions, certify_sample, chain_or_none
from verinet.certify.result import CertifyReport, SampleReport
from verinet.ir.graph import Network
from verinet.types import InputError
from verinet.verify.witness import OnnxEval

log = logging.getLogger(__name__)

Progress = Callable[[Iterable[int]], Iterable[int]]


def certify(
    network: Network,
    onnx_eval: OnnxEval | None,
    x: np.ndarray,
    y: np.ndarray,
    options: CertifyOptions,
    *,
    model_name: str = "",
    data_name: str = "",
    indices: np.ndarray | None = None,
    on_sample: Callable[[CertifyReport], None] | None = None,
    progress: Progress | None = None,
) -> CertifyReport:
    """Certify every row of ``x`` (raw flat inputs) with labels ``y``."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y)
    if x.ndim != 2 or x.shape[1] != network.n_inputs:
        raise InputError(f"data has shape {x.shape}, the model needs (N, {network.n_inputs})")
    if y.shape != (x.shape[0],):
        raise InputError(f"{y.size} labels for {x.shape[0]} samples")
    idx = np.arange(x.shape[0]) if indices is None else np.asarray(indices)
    chain, why = chain_or_none(network)  # once; None is passed on as "no chain"
    if chain is None:
        log.warning("no exact engine for this network (%s): lower bounds come from the "
                    "verifier's bounds only", why)
    t0 = time.monotonic()
    done: list[SampleReport] = []
    settings = _settings(options)
    order: Iterable[int] = range(x.shape[0])
    if progress is not None:
        order = progress(order)
    report = CertifyReport(model_name, data_name, (), options.eps, options.tolerance,
                           options.seed, settings, 0.0)
    for i in order:
        rep = certify_sample(network, onnx_eval, int(idx[i]), x[i], int(y[i]), options, chain)
        log.info("sample %d: %s radius [%s] in %.2fs", rep.index, rep.status.value,
                 "" if rep.radius is None else f"{rep.radius.lower:.6g}, {rep.radius.upper:.6g}",
                 rep.seconds)
        done.append(rep)
        report = CertifyReport(model_name, data_name, tuple(done), options.eps,
                               options.tolerance, options.seed, settings,
                               time.monotonic() - t0)
        if on_sample is not None:
            on_sample(report)
    return report


def _settings(options: CertifyOptions) -> tuple[tuple[str, object], ...]:
    return (("radius", options.radius), ("timeout", options.timeout),
            ("domain", list(options.domain)), ("attacks", list(options.attacks)),
            ("milp", options.milp), ("backend", options.backend),
            ("complete", options.verify.complete))
