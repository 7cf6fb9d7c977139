"""DeepPAC on a whole data file (``verinet pac``), written as a certify report.

Every sample becomes a :class:`~verinet.certify.result.SampleReport` of the certify
schema: the DeepPAC record under ``pac``; the radius sandwich ``[0, upper]`` where
``upper`` is the distance of the closest confirmed PAC counterexample (``inf``: none) --
DeepPAC proves nothing, so the lower end stays 0 and no sample is ever VERIFIED.  With an
eps the status is FALSIFIED when a confirmed counterexample lies within eps, else UNKNOWN
(the PAC verdict at eps is in the record).  Misclassified samples get radius ``[0, 0]``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from verinet.certify.result import CertifyReport, SampleReport, SampleStatus, Witness
from verinet.ir.graph import Network
from verinet.pac.result import PacRecord
from verinet.pac.sampling import FeatureMap
from verinet.pac.scenario import PacOptions
from verinet.pac.search import RadiusSearch, pac_at, pac_radius
from verinet.pac.verdict import PacProblem
from verinet.types import Guarantee, InputError, Reason, Sandwich
from verinet.verify.witness import OnnxEval

log = logging.getLogger(__name__)

Progress = Callable[[Iterable[int]], Iterable[int]]


@dataclass(frozen=True)
class PacRun:
    """What DeepPAC does for every sample: ``options``, the learning ``features``, and a
    radius ``search`` (None: only the verdict at the run's eps)."""

    options: PacOptions
    features: FeatureMap
    search: RadiusSearch | None = RadiusSearch()


def pac_settings(options: PacOptions, search: RadiusSearch | None, n_inputs: int
                 ) -> tuple[tuple[str, object], ...]:
    """The report's ``settings`` entries of a DeepPAC run."""
    c = options.counts(n_inputs)
    out: list[tuple[str, object]] = [
        ("method", "deeppac"), ("epsilon", options.epsilon), ("eta", options.eta),
        ("k1", c.k1), ("k2", c.k2), ("k3", c.k3), ("kappa", c.kappa),
        ("phase1", options.phase1_label), ("coef_bound", options.coef_bound),
        ("pac_seed", options.seed), ("dtype", options.dtype)]
    if search is not None:
        out += [("grid", search.grid), ("continuous", search.continuous),
                ("bracket", search.bracket)]
        if search.continuous:
            out.append(("radius_tolerance", search.tolerance))
    return tuple(out)


def run_pac(problem: PacProblem, eps: float | None, search: RadiusSearch | None) -> PacRecord:
    """The sample's DeepPAC record: radius search and/or the verdict at eps."""
    if search is not None:
        return pac_radius(problem, search, eps)
    if eps is None:
        raise InputError("DeepPAC needs an eps, a radius search, or both")
    return pac_at(problem, eps)


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


def pac_certify(network: Network, onnx_eval: OnnxEval | None, x: np.ndarray, y: np.ndarray,
                options: PacOptions, features: FeatureMap, *, eps: float | None = None,
                search: RadiusSearch | None = None, domain: tuple[float, float] = (0.0, 1.0),
                model_name: str = "", data_name: str = "", indices: np.ndarray | None = None,
                on_sample: Callable[[CertifyReport], None] | None = None,
                progress: Progress | None = None) -> CertifyReport:
    """DeepPAC on every row of ``x`` (raw flat inputs) with labels ``y``."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y)
    if x.ndim != 2 or x.shape[1] != network.n_inputs or y.shape != (x.shape[0],):
        raise InputError(f"data has shape {x.shape} with {y.size} labels, the model needs "
                         f"(N, {network.n_inputs})")
    if eps is None and search is None:
        raise InputError("give --eps E, --radius, or both")
    idx = np.arange(x.shape[0]) if indices is None else np.asarray(indices)
    settings = pac_settings(options, search, network.n_inputs)
    t0 = time.monotonic()
    done: list[SampleReport] = []
    order: Iterable[int] = range(x.shape[0]) if progress is None else progress(
        range(x.shape[0]))
    report = CertifyReport(model_name, data_name, (), eps, 0.0, options.seed, settings)
    for i in order:
        start = time.monotonic()
        label = int(y[i])
        pred = clean_prediction(network, x[i], label)
        if pred != label:
            rep = misclassified_report(int(idx[i]), x[i], label, pred, eps)
        else:
            problem = PacProblem(network, onnx_eval, x[i], label, options, features, domain)
            record = run_pac(problem, eps, search)
            rep = pac_sample_report(int(idx[i]), label, record, eps, time.monotonic() - start)
        log.info("sample %d: PAC radius %s in %.1fs", rep.index,
                 None if rep.pac is None else rep.pac.radius, rep.seconds)
        done.append(rep)
        report = CertifyReport(model_name, data_name, tuple(done), eps, 0.0, options.seed,
                               settings, time.monotonic() - t0)
        if on_sample is not None:
            on_sample(report)
    return report
