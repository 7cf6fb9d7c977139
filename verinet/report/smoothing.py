"""Reports of ``verinet smooth`` (randomized smoothing): JSON, CSV, a text table and
summary, and the certified-accuracy plot.

Every number here is about the **smoothed** classifier and is **probabilistic**: it
holds at confidence ``1 - alpha`` over the noise draws (the ``guarantee`` object of the
JSON says so in words).  It is not a sound bound on the base network and is kept apart
from ``verinet certify``'s reports: different file layout, no sandwich, no
``certified_accuracy`` of the base network.

JSON layout::

    {"verinet": version, "method": "randomized smoothing (Cohen et al., ICML 2019)",
     "mode": "certify" | "predict", "model", "data", "options": {sigma, n0, n, alpha,
     batch, seed, clip, dtype}, "guarantee": {kind: "probabilistic", confidence, sigma,
     of: "smoothed classifier", norm: "l2", statement}, "seconds",
     "summary": {n, abstained, correct, accuracy,
                 certified_accuracy: {radius: [...], accuracy: [...]}},   # certify only
     "curve": {radius: [...], certified_accuracy: [...]},                 # certify only
     "samples": [...]}

A ``certify`` sample: ``index, label, prediction`` (null: abstained), ``abstained,
correct, selected, selection_count, count, n0, n, p_lower, radius`` (L2, raw input
space; null when abstained) ``, seconds``.  A ``predict`` sample: ``index, label,
prediction, abstained, correct, top, counts, n, p_value, seconds``.  The curve is the
share of all samples certified correct with radius ``>= r`` on the exact grid of
:func:`verinet.smoothing.radius_grid` (0 and every certified-correct radius; the curve is
constant on each ``(r_{i-1}, r_i]`` and 0 past the last).  Writers are atomic.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from verinet import __version__
from verinet.report.atomic import atomic_write
from verinet.smoothing.result import Certificate, Prediction, SmoothingReport
from verinet.types import InputError

METHOD = "randomized smoothing (Cohen et al., ICML 2019)"
SUMMARY_RADII = (0.0, 0.25, 0.5, 0.75, 1.0)
CERTIFY_COLUMNS = ("index", "label", "prediction", "abstained", "correct", "selected",
                   "selection_count", "count", "n0", "n", "p_lower", "radius", "seconds")
PREDICT_COLUMNS = ("index", "label", "prediction", "abstained", "correct", "top",
                   "runner_up", "count_top", "count_runner_up", "n", "p_value", "seconds")


def _num(v: float | None) -> float | None:
    return float(v) if v is not None and math.isfinite(v) else None


def _sample_dict(s: Certificate | Prediction) -> dict[str, Any]:
    d: dict[str, Any] = {"index": s.index, "label": s.label, "prediction": s.prediction,
                         "abstained": s.abstained, "correct": s.correct}
    if isinstance(s, Certificate):
        d.update(selected=s.selected, selection_count=s.selection_count, count=s.count,
                 n0=s.n0, n=s.n, p_lower=s.p_lower, radius=_num(s.radius))
    else:
        d.update(top=list(s.top), counts=list(s.counts), n=s.n, p_value=s.p_value)
    d["seconds"] = s.seconds
    return d


def _accuracy_at(rep: SmoothingReport, radii: Sequence[float]) -> dict[str, list[float]]:
    r, acc = rep.curve(radii)
    return {"radius": [float(v) for v in r], "accuracy": [float(v) for v in acc]}


def report_to_dict(rep: SmoothingReport, radii: Sequence[float] = SUMMARY_RADII
                   ) -> dict[str, Any]:
    """The JSON object of the module doc; ``radii``: the summary's radii."""
    summary: dict[str, Any] = {"n": rep.n, "abstained": rep.abstained,
                               "correct": rep.correct,
                               "accuracy": rep.correct / rep.n if rep.n else None}
    out: dict[str, Any] = {
        "verinet": __version__, "method": METHOD, "mode": rep.mode, "model": rep.model,
        "data": rep.data, "options": asdict(rep.options),
        "guarantee": rep.guarantee.as_dict(), "seconds": rep.seconds, "summary": summary}
    if rep.mode == "certify":
        summary["certified_accuracy"] = _accuracy_at(rep, radii)
        grid, acc = rep.curve()
        out["curve"] = {"radius": [float(v) for v in grid],
                        "certified_accuracy": [float(v) for v in acc]}
    out["samples"] = [_sample_dict(s) for s in rep.samples]
    return out


def format_json(rep: SmoothingReport, radii: Sequence[float] = SUMMARY_RADII) -> str:
    return json.dumps(report_to_dict(rep, radii), indent=1, allow_nan=False) + "\n"


def write_json(rep: SmoothingReport, path: str | os.PathLike[str],
               radii: Sequence[float] = SUMMARY_RADII) -> None:
    """Write the JSON report atomically."""
    atomic_write(path, format_json(rep, radii))


def _cell(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    return str(v)


def format_csv(rep: SmoothingReport) -> str:
    """One row per sample (:data:`CERTIFY_COLUMNS` or :data:`PREDICT_COLUMNS`); an empty
    ``prediction``/``radius`` cell means abstained."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CERTIFY_COLUMNS if rep.mode == "certify" else PREDICT_COLUMNS)
    for s in rep.samples:
        head = [s.index, s.label, s.prediction, s.abstained, s.correct]
        if isinstance(s, Certificate):
            rest: list[object] = [s.selected, s.selection_count, s.count, s.n0, s.n,
                                  s.p_lower, s.radius, s.seconds]
        else:
            rest = [s.top[0], s.top[1], s.counts[0], s.counts[1], s.n, s.p_value, s.seconds]
        w.writerow([_cell(v) for v in head + rest])
    return buf.getvalue()


def write_csv(rep: SmoothingReport, path: str | os.PathLike[str]) -> None:
    atomic_write(path, format_csv(rep))


# ----------------------------------------------------------------------------- text


def header(mode: str) -> str:
    """The table header of streamed rows (:func:`format_row`)."""
    if mode == "certify":
        line = (f"{'index':>6} {'label':>5} {'pred':>7} {'count':>7} {'pA_lower':>9} "
                f"{'radius':>8} {'correct':>7} {'seconds':>7}")
    else:
        line = (f"{'index':>6} {'label':>5} {'pred':>7} {'nA':>7} {'nB':>7} {'p_value':>9} "
                f"{'correct':>7} {'seconds':>7}")
    return f"{line}\n{'-' * len(line)}\n"


def format_row(s: Certificate | Prediction) -> str:
    pred = "abstain" if s.prediction is None else str(s.prediction)
    lab = "-" if s.label is None else str(s.label)
    ok = "yes" if s.correct else "no"
    if isinstance(s, Certificate):
        rad = "-" if s.radius is None else f"{s.radius:.4f}"
        return (f"{s.index:6d} {lab:>5} {pred:>7} {s.count:7d} {s.p_lower:9.5f} {rad:>8} "
                f"{ok:>7} {s.seconds:7.2f}\n")
    return (f"{s.index:6d} {lab:>5} {pred:>7} {s.counts[0]:7d} {s.counts[1]:7d} "
            f"{s.p_value:9.3g} {ok:>7} {s.seconds:7.2f}\n")


def _share(k: float, n: int) -> str:
    return f"{100.0 * k / n:.1f}%" if n else "-"


def format_summary(rep: SmoothingReport, radii: Sequence[float] = SUMMARY_RADII) -> str:
    """The run's settings, its counts and (CERTIFY) the certified accuracy at ``radii``,
    under the statement of the guarantee."""
    o = rep.options
    what = (f"CERTIFY (n0 {o.n0}, n {o.n})" if rep.mode == "certify"
            else f"PREDICT (n {o.n})")
    lines = [f"randomized smoothing, {what}, sigma {o.sigma:g}, alpha {o.alpha:g}, "
             f"seed {o.seed}{', noise clipped to ' + str(o.clip) if o.clip else ''}",
             f"guarantee: {rep.guarantee.statement}",
             f"samples {rep.n} (model {rep.model}, data {rep.data}), abstained "
             f"{rep.abstained}, correct {rep.correct} ({_share(rep.correct, rep.n)})"]
    if rep.mode == "certify" and rep.n:
        r, acc = rep.curve(radii)
        cells = ", ".join(f"r={v:g}: {100 * a:.1f}%" for v, a in zip(r, acc, strict=True))
        lines.append(f"certified accuracy (L2, raw inputs) {cells}")
        rs = [c.radius for c in rep.certificates if c.correct and c.radius is not None]
        if rs:
            lines.append(f"median certified radius {float(np.median(rs)):.4g} over {len(rs)} "
                         "certified-correct samples")
    lines.append(f"time {rep.seconds:.1f} s")
    return "\n".join(lines) + "\n"


def format_table(rep: SmoothingReport, radii: Sequence[float] = SUMMARY_RADII) -> str:
    return (header(rep.mode) + "".join(format_row(s) for s in rep.samples) + "\n"
            + format_summary(rep, radii))


# ----------------------------------------------------------------------------- plot


def _draw_curve(ax: Any, rep: SmoothingReport) -> float:
    grid, acc = rep.curve()
    right = 1.1 * float(grid[-1]) if grid[-1] > 0 else 1.0
    # left-continuous steps: acc[i] holds on (grid[i-1], grid[i]], then 0 past the end
    xs = np.append(grid, right)
    ys = np.append(acc, 0.0)
    ax.step(xs, ys, where="pre", color="tab:green", label="certified accuracy")
    ax.set_xlim(0, right)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("L2 radius r (raw input space)")
    ax.set_ylabel("share certified correct with radius >= r")
    ax.set_title(f"smoothed classifier, sigma {rep.options.sigma:g}")
    ax.legend(fontsize=7, loc="upper right")
    return right


def _draw_radii(ax: Any, rep: SmoothingReport, top: float) -> None:
    certs = rep.certificates
    groups = (("certified correct", "tab:green", lambda c: c.correct),
              ("certified wrong", "tab:red", lambda c: not c.abstained and not c.correct),
              ("abstained", "tab:gray", lambda c: c.abstained))
    for name, colour, keep in groups:
        sel = [c for c in certs if keep(c)]
        if sel:
            ax.scatter([c.index for c in sel], [c.radius or 0.0 for c in sel], s=10,
                       color=colour, label=f"{name} ({len(sel)})")
    from matplotlib.ticker import MaxNLocator

    ax.set_ylim(-0.02 * top, top)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("sample index")
    ax.set_ylabel("certified L2 radius")
    ax.set_title("per sample (abstained at 0)")
    ax.legend(fontsize=7, loc="best")


def plot_curve(rep: SmoothingReport, path: str | os.PathLike[str]) -> None:
    """The certified-accuracy curve and the per-sample radii, saved to ``path``."""
    if rep.mode != "certify":
        raise InputError("the certified-accuracy plot needs CERTIFY results (not --predict)")
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise InputError("matplotlib is needed for --plot: pip install matplotlib") from None
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    top = _draw_curve(left, rep)
    _draw_radii(right, rep, top)
    o = rep.options
    model, data = (os.path.basename(v) or v for v in (rep.model, rep.data))
    fig.suptitle(f"{model} on {data}: CERTIFY n0 {o.n0}, n {o.n}, alpha {o.alpha:g}\n"
                 f"{rep.guarantee.statement}", fontsize=9)
    try:
        fig.savefig(os.fspath(path), dpi=110)
    except (OSError, ValueError) as e:
        raise InputError(f"cannot write plot {path}: {' '.join(str(e).split())}") from None
