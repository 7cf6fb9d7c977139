"""Reports of ``verinet certify``: JSON (schema ``certify_schema.json``), CSV and a text table.

JSON layout (draft 2020-12 schema in ``certify_schema.json``)::

    {"verinet": version, "model", "data", "eps", "tolerance", "seed", "settings", "seconds",
     "summary": {n, correct, clean_accuracy, verified, falsified, unknown,
                 certified_accuracy, empirical_accuracy, exact_radii, errors},
     "curves": {"eps": [...], "certified": [...], "empirical": [...]},
     "samples": [{index, label, predicted, status, reason, eps, radius, witness, seconds,
                  timings, message}, ...],
     "pac": {...}}          # only when DeepPAC ran (see below)

JSON has no infinity or NaN: ``radius.upper = null`` means no adversarial example was
found (upper bound +inf); any other ``null`` number means "not available" (no eps, no
samples).  ``status``/``reason``/guarantees are the enum values of
:class:`~verinet.certify.result.SampleStatus`, :class:`~verinet.types.Reason` and
:class:`~verinet.types.Guarantee`.

DeepPAC (``verinet pac``, ``verinet certify --pac``): a sample's ``radius.pac`` holds its
PAC record -- ``value`` (the maximum PAC radius, raw input units; null when no search
ran), ``guarantee: "pac"``, the ``(epsilon, eta)`` and sample counts behind it, the
verdict at eps and every verdict of the search (an ``unsafe`` one with its confirmed
counterexample).  The top-level ``pac`` holds the comparison of PAC radii with the
sandwiches (:class:`~verinet.certify.result.PacComparison`).  A PAC radius is never a
bound and never enters ``summary`` or ``curves``.

Curves grid (:func:`curve_grid`): 0, the run's eps and every finite radius end (and
per-sample eps) in [0, 1], sorted and unique; beyond 1 nothing changes because the ball
covers the whole input domain.  These are the only points where the curves can change,
so the values are exact step functions (constant from one grid point to the next, except
just after an eps at which samples were verified).  Above ``MAX_CURVE_POINTS`` points the
grid is thinned to evenly spaced ranks, keeping 0, the largest point and the run's eps.

Writers are atomic (temp file + rename), so rewriting the report after every sample
never leaves a half-written file and keeps earlier results if a later write fails.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from verinet import __version__
from verinet.certify.result import (
    CertifyReport,
    CleverEstimate,
    LipschitzBound,
    PacComparison,
    SampleReport,
    SampleStatus,
    Witness,
)
from verinet.pac.result import PacCheck, PacRecord, PacVerdict
from verinet.pac.scenario import ScenarioCounts
from verinet.report.atomic import atomic_write
from verinet.types import Counterexample, Guarantee, InputError, Reason, Sandwich, SoundnessError

SCHEMA_PATH = Path(__file__).with_name("certify_schema.json")
MAX_CURVE_POINTS = 201
CSV_COLUMNS = ("index", "label", "predicted", "status", "reason", "eps", "lower", "upper",
               "lower_by", "upper_by", "exact", "seconds", "pac", "pac_at_eps", "lipschitz")


def load_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of :func:`report_to_dict`'s output."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


# ----------------------------------------------------------------------------- curves


def curve_grid(report: CertifyReport, max_points: int = MAX_CURVE_POINTS) -> np.ndarray:
    """Sorted eps values at which the robust-accuracy curves can change (see module doc)."""
    pts = [0.0] + ([report.eps] if report.eps is not None else [])
    for r in report.samples:
        if r.eps is not None:
            pts.append(r.eps)
        if r.radius is not None:
            pts += [r.radius.lower, r.radius.upper]
    grid = np.unique([p for p in pts if math.isfinite(p) and 0.0 <= p <= 1.0])
    if grid.size > max_points:
        ranks = np.unique(np.round(np.linspace(0, grid.size - 1, max_points)).astype(int))
        grid = np.union1d(grid[ranks], [report.eps] if report.eps is not None else [])
    return grid


# ----------------------------------------------------------------------------- to / from dict


def _num(v: float | None) -> float | None:
    """A JSON number, or None for a missing or non-finite value."""
    return float(v) if v is not None and math.isfinite(v) else None


def _jsonable(v: object) -> object:
    """A JSON-safe copy of a settings value (non-finite floats become None)."""
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, np.generic):
        return _jsonable(v.item())
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return _num(v)
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_jsonable(u) for u in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(u) for k, u in v.items()}
    return str(v.value if hasattr(v, "value") else v)


def _radius_dict(r: SampleReport) -> dict[str, Any] | None:
    s = r.radius
    if s is None:
        return None
    d: dict[str, Any] = {"lower": _num(s.lower), "upper": _num(s.upper), "lower_by": s.lower_by,
         "upper_by": s.upper_by, "lower_guarantee": s.lower_guarantee.value,
         "upper_guarantee": s.upper_guarantee.value, "exact": r.exact}
    if r.pac is not None:
        d["pac"] = _pac_dict(r.pac)
    return d


def _floats(a: np.ndarray | None) -> list[float] | None:
    return None if a is None else np.asarray(a, dtype=np.float64).reshape(-1).tolist()


def _check_dict(c: PacCheck) -> dict[str, Any]:
    cex = c.counterexample
    return {"radius": float(c.radius), "verdict": c.verdict.value, "margin": float(c.margin),
            "upper": float(c.upper), "rival": c.rival, "seconds": float(c.seconds),
            "phase1": c.phase1,
            "counterexample": None if cex is None else {
                "distance": float(c.distance), "source": c.source, "x": _floats(cex.x),
                "y": _floats(cex.y), "y_onnx": _floats(cex.y_onnx)}}


def _pac_dict(p: PacRecord) -> dict[str, Any]:
    c = p.counts
    return {"value": _num(p.radius), "guarantee": p.guarantee.value, "method": "deeppac",
            "epsilon": p.epsilon, "eta": p.eta, "k1": c.k1, "k2": c.k2, "k3": c.k3,
            "kappa": c.kappa, "phase1": p.phase1, "seed": p.seed, "grid": _num(p.grid),
            "grid_value": _num(p.grid_radius), "continuous": p.continuous,
            "tolerance": _num(p.tolerance), "verdicts": p.verdicts,
            "joint_eta": float(p.joint_eta), "seconds": float(p.seconds),
            "at_eps": None if p.at_eps is None else _check_dict(p.at_eps),
            "checks": [_check_dict(x) for x in p.checks]}


def _comparison_dict(c: PacComparison | None) -> dict[str, Any] | None:
    if c is None:
        return None
    return {"n": c.n, "inside": c.inside, "above_upper": c.above, "below_lower": c.below,
            "at_eps": None if c.robust is None else {
                "pac_robust": c.robust, "unsafe": c.unsafe, "unknown": c.unknown}}


def _sample_dict(r: SampleReport) -> dict[str, Any]:
    w = r.witness
    return {
        "index": r.index, "label": r.label, "predicted": r.predicted,
        "status": r.status.value, "reason": r.reason.value, "eps": _num(r.eps),
        "radius": _radius_dict(r),
        "witness": None if w is None else {
            "distance": float(w.distance), "predicted": w.predicted, "method": w.method,
            "x": np.asarray(w.x, dtype=np.float64).tolist()},
        "seconds": float(r.seconds), "timings": {k: float(t) for k, t in r.timings},
        "attacks": {k: _num(v) for k, v in r.attacks},
        "message": r.message,
    } | ({} if r.clever is None else {"clever": _clever_dict(r)}) | (
        {} if r.lipschitz is None else {"lipschitz": _lipschitz_dict(r.lipschitz)})


def _lipschitz_dict(lip: LipschitzBound) -> dict[str, Any]:
    return {"radius": float(lip.radius), "global_radius": float(lip.global_radius),
            "ball": float(lip.ball), "norm": "inf", "guarantee": "sound"}


def _clever_dict(r: SampleReport) -> dict[str, Any]:
    c = r.clever
    assert c is not None
    return {"score": float(c.score), "norm": "inf", "guarantee": "estimate",
            "target": c.target, "sampling_radius": float(c.sampling_radius),
            "batches": c.batches, "batch_size": c.batch_size, "seed": c.seed,
            "exceeds_upper": r.clever_exceeds_upper}


def report_to_dict(report: CertifyReport) -> dict[str, Any]:
    """The report as JSON-ready plain data (layout in the module docstring)."""
    s = report.summary()
    grid = curve_grid(report)
    cert, emp = report.curves(grid)
    comparison = report.pac_comparison()
    return {
        "verinet": __version__, "model": report.model, "data": report.data,
        "eps": _num(report.eps), "tolerance": float(report.tolerance), "seed": report.seed,
        "settings": {str(k): _jsonable(v) for k, v in report.settings},
        "seconds": float(report.seconds),
        "summary": {
            "n": s.n, "correct": s.correct, "clean_accuracy": _num(s.clean_accuracy),
            "verified": s.verified, "falsified": s.falsified, "unknown": s.unknown,
            "certified_accuracy": _num(s.certified_accuracy),
            "empirical_accuracy": _num(s.empirical_accuracy), "exact_radii": s.exact_radii,
            "errors": s.errors,
        },
        "curves": {"eps": grid.tolist(), "certified": cert.tolist(), "empirical": emp.tolist()},
        "samples": [_sample_dict(r) for r in report.samples],
    } | ({} if comparison is None else {"pac": _comparison_dict(comparison)})


def _check_from_dict(d: dict[str, Any], counts: ScenarioCounts) -> PacCheck:
    cd = d["counterexample"]
    cex = None if cd is None else Counterexample(
        np.asarray(cd["x"], dtype=np.float64), np.asarray(cd["y"], dtype=np.float64),
        None if cd["y_onnx"] is None else np.asarray(cd["y_onnx"], dtype=np.float64),
        confirmed=True)
    return PacCheck(d["radius"], PacVerdict(d["verdict"]), d["margin"], d["upper"], d["rival"],
                    counts, cex, "" if cd is None else cd["source"],
                    math.inf if cd is None else cd["distance"], d["seconds"], d.get("phase1", ""))


def _pac_from_dict(d: dict[str, Any] | None) -> PacRecord | None:
    if d is None:
        return None
    counts = ScenarioCounts(d["k1"], d["k2"], d["k3"], d["kappa"])
    return PacRecord(
        d["epsilon"], d["eta"], counts, d["phase1"], d["seed"], d["value"], d["grid"],
        d["grid_value"], d["continuous"], d["tolerance"],
        None if d["at_eps"] is None else _check_from_dict(d["at_eps"], counts),
        tuple(_check_from_dict(c, counts) for c in d["checks"]), d["seconds"])


def _sample_from_dict(d: dict[str, Any]) -> SampleReport:
    rd, wd = d["radius"], d["witness"]
    radius = None if rd is None else Sandwich(
        rd["lower"], math.inf if rd["upper"] is None else rd["upper"], rd["lower_by"],
        rd["upper_by"], Guarantee(rd["lower_guarantee"]), Guarantee(rd["upper_guarantee"]))
    witness = None if wd is None else Witness(
        np.asarray(wd["x"], dtype=np.float64), wd["predicted"], wd["distance"], wd["method"])
    return SampleReport(
        d["index"], d["label"], d["predicted"], SampleStatus(d["status"]), Reason(d["reason"]),
        d["eps"], radius, bool(rd is not None and rd["exact"]), witness, d["seconds"],
        tuple(d["timings"].items()), d["message"],
        tuple((k, math.inf if v is None else v) for k, v in d.get("attacks", {}).items()),
        None if rd is None else _pac_from_dict(rd.get("pac")),
        None if d.get("clever") is None else CleverEstimate(
            d["clever"]["score"], d["clever"]["target"], d["clever"]["sampling_radius"],
            d["clever"]["batches"], d["clever"]["batch_size"], d["clever"]["seed"]),
        None if d.get("lipschitz") is None else LipschitzBound(
            d["lipschitz"]["radius"], d["lipschitz"]["global_radius"], d["lipschitz"]["ball"]))


def report_from_dict(d: dict[str, Any]) -> CertifyReport:
    """Rebuild a report from :func:`report_to_dict`'s output (e.g. to re-plot it)."""
    try:
        return CertifyReport(
            d["model"], d["data"], tuple(_sample_from_dict(s) for s in d["samples"]),
            d["eps"], d["tolerance"], d["seed"], tuple(d["settings"].items()), d["seconds"])
    except (KeyError, TypeError, ValueError, AttributeError, SoundnessError) as e:
        raise InputError(f"not a verinet certify report: {type(e).__name__}: {e}") from None


def read_json(path: str | os.PathLike[str]) -> CertifyReport:
    """Read a report written by :func:`write_json`."""
    p = Path(path)
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read report {p}: {' '.join(str(e).split())}") from None
    return report_from_dict(d)


# ----------------------------------------------------------------------------- writers


def format_json(report: CertifyReport) -> str:
    """The JSON text (strict: no NaN or Infinity literals)."""
    return json.dumps(report_to_dict(report), indent=1, allow_nan=False) + "\n"


def write_json(report: CertifyReport, path: str | os.PathLike[str]) -> None:
    """Write the JSON report atomically; on any failure the previous file is untouched."""
    atomic_write(path, format_json(report))


def _csv_num(v: float | None) -> str:
    return "" if v is None else repr(float(v))


def format_csv(report: CertifyReport) -> str:
    """One row per sample with :data:`CSV_COLUMNS`; ``upper`` is ``inf`` when no
    adversarial example was found; ``pac`` is the PAC radius and ``pac_at_eps`` the PAC
    verdict at eps; ``lipschitz`` the sound Lipschitz radius (the larger of the local and
    the global one); empty cells mean "not available"."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in report.samples:
        s = r.radius
        ends = ["", "", "", ""] if s is None else [
            _csv_num(s.lower), _csv_num(s.upper), s.lower_by, s.upper_by]
        p = r.pac
        pac = ["", ""] if p is None else [
            _csv_num(p.radius), "" if p.at_eps is None else p.at_eps.verdict.value]
        lip = "" if r.lipschitz is None else _csv_num(r.lipschitz.best)
        w.writerow([r.index, r.label, r.predicted, r.status.value, r.reason.value,
                    _csv_num(r.eps), *ends, "true" if r.exact else "false",
                    _csv_num(r.seconds), *pac, lip])
    return buf.getvalue()


def write_csv(report: CertifyReport, path: str | os.PathLike[str]) -> None:
    """Write :func:`format_csv` atomically."""
    atomic_write(path, format_csv(report))


# ----------------------------------------------------------------------------- table


def _g(v: float) -> str:
    return f"{v:.4g}"


def _row(r: SampleReport, pac: bool = False) -> list[str]:
    s = r.radius
    notes = [r.reason.value] if r.status is SampleStatus.UNKNOWN else []
    notes += [r.message] if r.message else []
    ends = ["-", "-", ""] if s is None else [
        _g(s.lower), _g(s.upper), f"{s.lower_by or '-'}/{s.upper_by or '-'}"]
    lip = "-" if r.lipschitz is None else _g(r.lipschitz.best)
    row = [str(r.index), str(r.label), str(r.predicted), r.status.value, ends[0], ends[1], lip,
           "yes" if r.exact else "", ends[2], f"{r.seconds:.2f}", "; ".join(notes)]
    if pac:
        p = r.pac
        row.insert(7, "-" if p is None or p.radius is None else _g(p.radius))
    return row


def _share(k: int, n: int) -> str:
    return f"{k}/{n} = {100.0 * k / n:.1f}%" if n else f"{k}/0"


def _summary_lines(report: CertifyReport) -> list[str]:
    s = report.summary()
    lines = [f"samples            {s.n} (model {report.model}, data {report.data})",
             f"clean accuracy     {_share(s.correct, s.n)}"]
    if report.eps is None or s.verified is None or s.falsified is None:
        lines.append("robust accuracy    - (no eps given: radii only)")
    else:
        lines += [
            f"at eps = {report.eps:g} (L-inf, raw inputs):",
            f"  certified robust {_share(s.verified, s.n)}  (proven: lower bound)",
            f"  empirical robust {_share(s.correct - s.falsified, s.n)}  (no adversarial "
            f"example found: upper bound; {s.falsified} falsified)",
            f"  unknown          {s.unknown}, misclassified {s.n - s.correct}",
        ]
    radii = [r.radius for r in report.samples if r.correct and r.radius is not None]
    if radii:
        lo = float(np.median([r.lower for r in radii]))
        hi = float(np.median([r.upper for r in radii]))
        lines.append(f"median radius      [{lo:.4g}, {hi:.4g}] over {len(radii)} correct samples")
    lines += [f"exact radii        {_share(s.exact_radii, s.n)} (tolerance {report.tolerance:g})",
              f"time               {report.seconds:.1f} s"]
    if s.errors:
        lines.append(f"errors             {s.errors} sample(s) failed (status error: see "
                     "their messages)")
    return lines + _pac_lines(report) + _clever_lines(report) + _lipschitz_lines(report)


def _lipschitz_lines(report: CertifyReport) -> list[str]:
    """The sound Lipschitz radii: their median and how often they gave the lower end."""
    recs = [r for r in report.samples if r.lipschitz is not None]
    if not recs:
        return []
    best = [r.lipschitz.best for r in recs if r.lipschitz is not None]
    won = sum(r.radius is not None and r.radius.lower_by == "lipschitz" for r in recs)
    return [f"Lipschitz radius   (L-inf, sound) median {float(np.median(best)):.4g} over "
            f"{len(recs)} samples; the lower end on {won}"]


def _clever_lines(report: CertifyReport) -> list[str]:
    """CLEVER next to the sandwiches: its median and how often it exceeds the attack's
    upper bound (a confirmed adversarial example closer than the estimate)."""
    recs = [r for r in report.samples if r.clever is not None]
    if not recs:
        return []
    scores = [r.clever.score for r in recs if r.clever is not None]
    flags = [r.clever_exceeds_upper for r in recs]
    known = [f for f in flags if f is not None]
    return [f"CLEVER (L-inf, an estimate, never a bound): median {float(np.median(scores)):.5g} "
            f"over {len(recs)} samples; above the attack upper bound on {sum(known)}/"
            f"{len(known)} (gradient masking or over-estimation)"]


def _pac_lines(report: CertifyReport) -> list[str]:
    """The DeepPAC section: settings, verdicts at eps, PAC radii against the sandwiches."""
    c = report.pac_comparison()
    if c is None:
        return []
    recs = [r.pac for r in report.samples if r.pac is not None]
    p = recs[0]
    k = p.counts
    lines = ["", f"DeepPAC (error rate {p.epsilon:g}, significance {p.eta:g}; K1 {k.k1}, "
             f"K2 {k.k2}, K3 {k.k3}, kappa {k.kappa}; phase 1 {p.phase1}): PAC radii are "
             "estimates, not bounds"]
    if c.robust is not None:
        lines.append(f"  at eps           PAC-robust {c.robust}, unsafe {c.unsafe}, "
                     f"unknown {c.unknown}")
    radii = [x.radius for x in recs if x.radius is not None]
    if radii:
        lines.append(f"  median PAC radius {float(np.median(radii)):.4g} over {len(radii)} "
                     "samples")
    if c.n:
        lines += [f"  PAC vs sandwich  inside [lower, upper] {_share(c.inside, c.n)}, "
                  f"above upper {_share(c.above, c.n)}, below lower {_share(c.below, c.n)}"]
    return lines


def _columns(pac: bool) -> tuple[list[str], set[int]]:
    """The table's column names and which of them are text (left-aligned)."""
    head = ["index", "label", "pred", "status", "lower", "upper", "lipschitz", "exact", "by",
            "seconds", "note"]
    if pac:
        head.insert(7, "pac")
        return head, {3, 9, 11}
    return head, {3, 8, 10}


def _fmt(row: list[str], widths: list[int], left: set[int]) -> str:
    cells = [c.ljust(w) if i in left else c.rjust(w)
             for i, (c, w) in enumerate(zip(row, widths, strict=True))]
    return "  ".join(cells).rstrip()


def format_table(report: CertifyReport) -> str:
    """A plain-text table (one line per sample; the note is the reason of an unknown
    verdict and the sample's message; a ``pac`` column when DeepPAC ran) followed by the
    summary block (and the DeepPAC section)."""
    pac = any(r.pac is not None for r in report.samples)
    head, left = _columns(pac)
    rows = [head] + [_row(r, pac) for r in report.samples]
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    rule = "-" * max(len(_fmt(r, widths, left)) for r in rows)
    lines = [_fmt(head, widths, left), rule] + [_fmt(r, widths, left) for r in rows[1:]]
    return "\n".join(lines + [""] + _summary_lines(report)) + "\n"


def format_summary(report: CertifyReport) -> str:
    """The summary block of :func:`format_table` alone (after streamed rows)."""
    return "\n".join(_summary_lines(report)) + "\n"


class TableStream:
    """The table of :func:`format_table`, one row at a time as samples finish: fixed
    column widths (a longer cell widens its own row only), the header before the first
    row, :func:`format_summary` at the end."""

    # minimum widths: index, label, pred, status, lower, upper, lipschitz, [pac,] exact, by,
    # seconds
    WIDTHS = (5, 5, 4, 13, 10, 10, 9, 5, 22, 7)

    def __init__(self, pac: bool) -> None:
        self.pac = pac
        self.head, self.left = _columns(pac)
        widths = list(self.WIDTHS)
        if pac:
            widths.insert(7, 10)
        self.widths = [max(w, len(h)) for w, h in zip(widths, self.head, strict=False)] + [0]

    def header(self) -> str:
        line = _fmt(self.head, self.widths, self.left)
        return f"{line}\n{'-' * max(len(line), 80)}\n"

    def row(self, r: SampleReport) -> str:
        return _fmt(_row(r, self.pac), self.widths, self.left) + "\n"
