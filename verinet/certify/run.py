"""Certify a whole dataset: one :func:`~verinet.certify.engine.certify_sample` per sample.

``on_sample`` is called with the report built so far after every sample (the CLI writes
the JSON there, so an interruption or a later failure keeps what is already computed).

With ``pac`` (``verinet certify --pac``) DeepPAC runs on every correctly classified sample
after its sandwich: the PAC record is attached to the sample report (never counted as
certified), and a PAC counterexample closer than the attack's witness -- confirmed again
here on the IR and the original ONNX model by :func:`~verinet.certify.bracket.confirm_witness`
-- becomes the sample's witness and tightens the upper bound (the report's invariants
then check it against the certified lower bound: a PAC counterexample below it is a bug).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import replace

import numpy as np

from verinet.certify.bracket import Sample, confirm_witness
from verinet.certify.engine import CertifyOptions, certify_sample
from verinet.certify.result import (
    CertifyReport,
    CleverEstimate,
    SampleReport,
    SampleStatus,
    Witness,
)
from verinet.estimates.clever import CleverOptions
from verinet.ir.graph import Network
from verinet.pac.dataset import PacRun, pac_settings, run_pac
from verinet.pac.result import PacRecord
from verinet.pac.verdict import PacProblem
from verinet.types import Guarantee, InputError, Reason, Sandwich
from verinet.verify.views import ModelViews
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
    pac: PacRun | None = None,
    clever: CleverOptions | None = None,
) -> CertifyReport:
    """Certify every row of ``x`` (raw flat inputs) with labels ``y`` (and run DeepPAC on
    each with ``pac``, see the module doc)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y)
    if x.ndim != 2 or x.shape[1] != network.n_inputs:
        raise InputError(f"data has shape {x.shape}, the model needs (N, {network.n_inputs})")
    if y.shape != (x.shape[0],):
        raise InputError(f"{y.size} labels for {x.shape[0]} samples")
    idx = np.arange(x.shape[0]) if indices is None else np.asarray(indices)
    views = ModelViews(network)  # derived once for every sample
    if views.graph.unsupported:
        log.warning("no bound engine for %d node(s) of this network (%s): no certified "
                    "lower bounds", len(views.graph.unsupported),
                    "; ".join(f"{op} '{n}'" for op, n, _ in views.graph.unsupported[:3]))
    t0 = time.monotonic()
    done: list[SampleReport] = []
    settings = _settings(options)
    if pac is not None:
        settings += (("pac", dict(pac_settings(pac.options, pac.search, network.n_inputs))),)
    order: Iterable[int] = range(x.shape[0])
    if progress is not None:
        order = progress(order)
    report = CertifyReport(model_name, data_name, (), options.eps, options.tolerance,
                           options.seed, settings, 0.0)
    for i in order:
        rep = certify_sample(network, onnx_eval, int(idx[i]), x[i], int(y[i]), options, views)
        if pac is not None and rep.correct:
            rep = with_pac(network, onnx_eval, rep, x[i], options, pac)
        if clever is not None and rep.correct:
            rep = with_clever(network, rep, x[i], options, clever)
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


def with_clever(network: Network, rep: SampleReport, x0: np.ndarray, options: CertifyOptions,
                clever: CleverOptions) -> SampleReport:
    """``rep`` with its untargeted L-inf CLEVER estimate (seeded by the run's seed and the
    sample's index)."""
    from verinet.estimates.clever import clever_scores

    t0 = time.monotonic()
    seed = int(np.random.default_rng([options.seed, rep.index]).integers(2**62))
    res = clever_scores(network, x0[None, :], np.array([rep.label]), norm="inf",
                        options=clever, domain=options.domain,
                        rng=np.random.default_rng(seed))[0]
    est = CleverEstimate(res.score, res.target, res.radius, clever.nb_batches,
                         clever.batch_size, seed)
    seconds = time.monotonic() - t0
    return replace(rep, clever=est, timings=rep.timings + (("clever", seconds),),
                   seconds=rep.seconds + seconds)


def with_pac(network: Network, onnx_eval: OnnxEval | None, rep: SampleReport, x0: np.ndarray,
             options: CertifyOptions, pac: PacRun) -> SampleReport:
    """``rep`` with its DeepPAC record, and tightened by a closer PAC counterexample."""
    t0 = time.monotonic()
    problem = PacProblem(network, onnx_eval, x0, rep.label, pac.options, pac.features,
                         options.domain)
    record = run_pac(problem, options.eps, pac.search)
    closest = record.counterexample
    w = None
    upper = rep.radius.upper if rep.radius is not None else float("inf")
    if closest is not None and closest.counterexample is not None and closest.distance < upper:
        n, (lo, hi) = network.n_inputs, options.domain
        sample = Sample(problem.x0, rep.label, (np.full(n, lo), np.full(n, hi)))
        w = confirm_witness(network, onnx_eval, sample, closest.counterexample.x,
                            f"pac-{closest.source}")
    return _tightened(rep, record, w, options, time.monotonic() - t0)


def _tightened(rep: SampleReport, record: PacRecord, w: Witness | None,
               options: CertifyOptions, seconds: float) -> SampleReport:
    timings = rep.timings + (("pac", seconds),)
    out = replace(rep, pac=record, timings=timings, seconds=rep.seconds + seconds)
    r = rep.radius
    if w is None or r is None or w.distance >= r.upper:
        return out
    radius = Sandwich(r.lower, w.distance, r.lower_by, w.method, r.lower_guarantee,
                      Guarantee.EMPIRICAL)
    status, reason = rep.status, rep.reason
    if options.eps is not None and w.distance <= options.eps:
        status, reason = SampleStatus.FALSIFIED, Reason.WITNESS_CONFIRMED
    note = f"a PAC counterexample tightened the upper bound to {w.distance:.6g}"
    log.info("sample %d: %s", rep.index, note)
    return replace(out, radius=radius, witness=w, status=status, reason=reason,
                   exact=radius.gap <= options.tolerance,
                   attacks=rep.attacks + ((w.method, w.distance),),
                   message="; ".join(m for m in (rep.message, note) if m))


def _settings(options: CertifyOptions) -> tuple[tuple[str, object], ...]:
    return (("radius", options.radius), ("timeout", options.timeout),
            ("domain", list(options.domain)), ("attacks", list(options.attacks)),
            ("milp", options.milp), ("backend", options.backend),
            ("complete", options.verify.complete))
