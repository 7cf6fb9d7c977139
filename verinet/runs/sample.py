"""One sample's work, the unit every backend runs: ``verinet certify`` (the sandwich, and
with ``--pac``/``--clever`` DeepPAC and CLEVER beside it) or ``verinet pac`` (DeepPAC
alone), as a :class:`SampleJob` applied to an :class:`Item` by a :class:`SampleRunner`.

A sample's result depends on the job, the model and the item alone: every random stream
derives from ``(seed, index)`` (:func:`~verinet.certify.engine.certify_sample`) or from
the DeepPAC seed restarted per verdict, so a sample certified in any worker, in any
order, gives the same record (timings aside; a sample whose time budget ran out may end
with other, still sound, bounds).

``certify --pac``: DeepPAC runs on every correctly classified sample after its sandwich;
the PAC record is attached to the sample report (never counted as certified), and a PAC
counterexample closer than the attack's witness -- confirmed again here on the IR and the
original ONNX model by :func:`~verinet.certify.bracket.confirm_witness` -- becomes the
sample's witness and tightens the upper bound (the report's invariants then check it
against the certified lower bound: a PAC counterexample below it is a bug).

``pac``: every sample becomes a report of the certify schema with the DeepPAC record
under ``pac``; the radius sandwich is ``[0, upper]`` where ``upper`` is the distance of
the closest confirmed PAC counterexample (``inf``: none) -- DeepPAC proves nothing, so
the lower end stays 0 and no sample is ever VERIFIED.  With an eps the status is
FALSIFIED when a confirmed counterexample lies within eps, else UNKNOWN (the PAC verdict
at eps is in the record).  Misclassified samples get radius ``[0, 0]``.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, replace

import numpy as np

from verinet.certify.bracket import Sample, confirm_witness
from verinet.certify.engine import CertifyOptions, certify_sample
from verinet.certify.result import CleverEstimate, SampleReport, SampleStatus, Witness
from verinet.estimates.clever import CleverOptions
from verinet.ir.graph import Network
from verinet.pac.result import PacRecord
from verinet.pac.run import PacRun, pac_settings, run_pac
from verinet.pac.verdict import PacProblem
from verinet.types import Guarantee, InputError, Reason, Sandwich, SoundnessError
from verinet.verify.views import ModelViews
from verinet.verify.witness import OnnxEval

log = logging.getLogger(__name__)

COMMANDS = ("certify", "pac")


@dataclass(frozen=True)
class Item:
    """One sample: its ``index`` in the data file, raw flat input ``x`` and ``label``."""

    index: int
    x: np.ndarray
    label: int


@dataclass(frozen=True)
class SampleJob:
    """What is done to every sample of a run (picklable: it travels to the workers).

    ``command`` ``certify`` needs ``certify`` options (``pac``/``clever`` optional);
    ``pac`` needs a :class:`~verinet.pac.run.PacRun` and ``eps`` (its verdict radius,
    may be None with a radius search) and ``domain`` (the input domain)."""

    command: str
    certify: CertifyOptions | None = None
    pac: PacRun | None = None
    clever: CleverOptions | None = None
    pac_eps: float | None = None
    pac_domain: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self) -> None:
        if self.command not in COMMANDS:
            raise InputError(f"unknown sample command {self.command!r}")
        if self.command == "certify" and self.certify is None:
            raise InputError("a certify job needs certify options")
        if self.command == "pac":
            if self.pac is None:
                raise InputError("a pac job needs DeepPAC options")
            if self.pac_eps is None and self.pac.search is None:
                raise InputError("give --eps E, --radius, or both")

    @property
    def eps(self) -> float | None:
        return self.certify.eps if self.certify is not None else self.pac_eps

    @property
    def tolerance(self) -> float:
        return self.certify.tolerance if self.certify is not None else 0.0

    @property
    def seed(self) -> int:
        if self.certify is not None:
            return self.certify.seed
        assert self.pac is not None
        return self.pac.options.seed

    @property
    def domain(self) -> tuple[float, float]:
        return self.certify.domain if self.certify is not None else self.pac_domain

    def settings(self, n_inputs: int) -> tuple[tuple[str, object], ...]:
        """The report's ``settings`` (every option that changes results)."""
        pac = () if self.pac is None else pac_settings(self.pac.options, self.pac.search,
                                                       n_inputs)
        if self.certify is None:
            return pac
        o = self.certify
        out: tuple[tuple[str, object], ...] = (
            ("radius", o.radius), ("timeout", o.timeout), ("domain", list(o.domain)),
            ("attacks", list(o.attacks)), ("milp", o.milp), ("backend", o.backend),
            ("complete", o.verify.complete))
        if o.search != "bisection":
            out += (("radius_search", o.search),)
        if self.pac is not None:
            out += (("pac", dict(pac)),)
        if self.clever is not None:
            c = self.clever
            out += (("clever", {"batches": c.nb_batches, "batch_size": c.batch_size}),)
        return out

    def run(self, runner: SampleRunner, item: Item) -> SampleReport:
        """This job's work on one sample, with the runner's model and views."""
        x = np.asarray(item.x, dtype=np.float64).reshape(-1)
        net, onnx_eval = runner.network, runner.onnx_eval
        if self.command == "pac":
            assert self.pac is not None
            return pac_only(net, onnx_eval, item.index, x, item.label, self.pac, self.pac_eps,
                            self.pac_domain)
        assert self.certify is not None
        o = self.certify
        rep = certify_sample(net, onnx_eval, item.index, x, item.label, o, runner.views)
        if self.pac is not None and rep.correct:
            rep = with_pac(net, onnx_eval, rep, x, o, self.pac)
        if self.clever is not None and rep.correct:
            rep = with_clever(net, rep, x, o, self.clever)
        return rep


class SampleRunner:
    """A worker's state: the model and its engine views, derived once and kept for every
    sample the worker runs."""

    def __init__(self, network: Network, onnx_eval: OnnxEval | None) -> None:
        self.network = network
        self.onnx_eval = onnx_eval
        self.views = ModelViews(network)

    def run(self, job: SampleJob, item: Item) -> SampleReport:
        """The sample's report; raises what the engines raise (see :meth:`attempt`)."""
        rep = job.run(self, item)
        log.info("sample %d: %s radius [%s] in %.2fs", rep.index, rep.status.value,
                 "" if rep.radius is None else f"{rep.radius.lower:.6g}, {rep.radius.upper:.6g}",
                 rep.seconds)
        return rep

    def attempt(self, job: SampleJob, item: Item) -> SampleReport:
        """:meth:`run`, with a failure of the sample's own work recorded as an ``error``
        report (the run goes on).  A :class:`~verinet.types.SoundnessError` (a bug: never a
        result) and interrupts propagate."""
        t0 = time.monotonic()
        try:
            return self.run(job, item)
        except (SoundnessError, KeyboardInterrupt):
            raise
        except Exception as e:  # noqa: BLE001 -- the sample's failure, recorded as such
            message = " ".join(f"{type(e).__name__}: {e}".split())
            log.warning("sample %d failed: %s", item.index, message)
            return error_report(self.network, item, job.eps, message,
                                time.monotonic() - t0)


def error_report(network: Network, item: Item, eps: float | None, message: str,
                 seconds: float = 0.0) -> SampleReport:
    """An ``error`` record: the sample's clean prediction (one forward pass), no bounds."""
    x = np.asarray(item.x, dtype=np.float64).reshape(-1)
    try:
        predicted = clean_prediction(network, x, item.label)
    except Exception:  # noqa: BLE001 -- the record must still be written
        predicted = item.label
    return SampleReport(item.index, item.label, predicted, SampleStatus.ERROR, Reason.ERROR,
                        eps, seconds=seconds, message=message)


# ----------------------------------------------------------------------------- certify


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


# ----------------------------------------------------------------------------- DeepPAC


def pac_only(network: Network, onnx_eval: OnnxEval | None, index: int, x0: np.ndarray,
             label: int, pac: PacRun, eps: float | None, domain: tuple[float, float]
             ) -> SampleReport:
    """``verinet pac``'s report of one sample (module doc)."""
    start = time.monotonic()
    pred = clean_prediction(network, x0, label)
    if pred != label:
        return misclassified_report(index, x0, label, pred, eps)
    problem = PacProblem(network, onnx_eval, x0, label, pac.options, pac.features, domain)
    record = run_pac(problem, eps, pac.search)
    return pac_sample_report(index, label, record, eps, time.monotonic() - start)


def pac_witness(record: PacRecord, label: int) -> Witness | None:
    """The closest confirmed PAC counterexample as a certify witness."""
    check = record.counterexample
    if check is None or check.counterexample is None:
        return None
    cex = check.counterexample
    y = cex.y_onnx if cex.y_onnx is not None else cex.y
    others = np.delete(np.arange(y.size), label)
    return Witness(cex.x, int(others[np.argmax(y[others])]), check.distance,
                   f"pac-{check.source}")


def pac_sample_report(index: int, label: int, record: PacRecord, eps: float | None,
                      seconds: float) -> SampleReport:
    """A correctly classified sample's report from its DeepPAC record (module doc)."""
    w = pac_witness(record, label)
    upper = math.inf if w is None else w.distance
    radius = Sandwich(0.0, upper, "none", "" if w is None else w.method,
                      Guarantee.SOUND, Guarantee.EMPIRICAL)
    status, reason = SampleStatus.NOT_ASKED, Reason.NONE
    if eps is not None:
        if w is not None and w.distance <= eps:
            status, reason = SampleStatus.FALSIFIED, Reason.WITNESS_CONFIRMED
        else:
            status, reason = SampleStatus.UNKNOWN, Reason.INCOMPLETE
    attacks = () if w is None else ((w.method, w.distance),)
    timings = (("pac", record.seconds),)
    note = "" if record.at_eps is None else f"PAC {record.at_eps.verdict.value} at eps"
    return SampleReport(index, label, label, status, reason, eps, radius, False, w, seconds,
                        timings, note, attacks, record)


def misclassified_report(index: int, x0: np.ndarray, label: int, predicted: int,
                         eps: float | None) -> SampleReport:
    return SampleReport(index, label, predicted, SampleStatus.MISCLASSIFIED,
                        Reason.WITNESS_CONFIRMED, eps, Sandwich(0.0, 0.0, "clean", "clean"),
                        True, Witness(x0, predicted, 0.0, "clean"),
                        message="misclassified without perturbation")


def clean_prediction(network: Network, x0: np.ndarray, label: int) -> int:
    """The label if the float64 IR classifies ``x0`` correctly (strictly), else the
    highest-scoring other class."""
    y = network.evaluate(x0)
    others = np.delete(np.arange(y.size), label)
    rival = int(others[np.argmax(y[others])])
    return rival if y[rival] >= y[label] else int(label)
