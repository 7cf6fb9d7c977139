"""Reports of ``verinet study``: JSON, CSV (one row per model), a terminal table and the
figures (transfer heatmap, accuracy-vs-robustness scatter with its Pareto front, metric
vs attack success rate panels).

JSON layout: ``data``, ``options`` (the :class:`~verinet.study.StudyOptions`),
``models`` (one object per model, the fields of
:class:`~verinet.study.ModelMetrics`; ``null`` for undefined values), ``transfer``
(``sources``/``targets`` names and ``matrix[i][j]``: share of model j's correct samples
fooled by the I-FGSM examples crafted on model i), ``advgan_transfer`` (the same for the
examples of the AdvGAN generator trained against model i; ``null`` without AdvGAN),
``pareto`` (model names) and
``correlations`` (Spearman / Kendall of each metric against ``ifgsm_success``).
CLEVER and ROBY are estimates, certified values are sound bounds, attack values are
empirical: the JSON labels each group in ``guarantees``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import asdict
from typing import Any

import numpy as np

from verinet.report.atomic import atomic_write
from verinet.study.run import StudyReport
from verinet.types import InputError

GUARANTEES = {
    "clean_accuracy": "exact on the set",
    "ifgsm_success": "empirical (confirmed adversarial examples)",
    "ifgsm_mean_linf": "empirical (upper bounds on each minimal distortion)",
    "cw_success": "empirical", "cw_mean_l2": "empirical",
    "clever_linf": "estimate (extreme-value theory, not a bound)",
    "lipschitz_mean": "sound (mean of certified L-inf Lipschitz radii)",
    "roby": "estimate (feature statistics)", "fsa": "estimate", "fsd": "estimate",
    "fsc": "estimate",
    "certified_accuracy": "sound (lower bound on the robust accuracy)",
    "certified_mean_lower": "sound (mean of certified lower radii)",
    "empirical_accuracy": "empirical (upper bound on the robust accuracy)",
    "attack_mean_upper": "empirical",
    "pac_mean": "pac (DeepPAC estimate with an (epsilon, eta) guarantee, never a bound)",
    "pac_inside": "share of PAC radii inside their [certified lower, attack upper]",
    "smoothed_accuracy": "probabilistic (randomized smoothing's CERTIFY, for the smoothed "
                         "classifier at options.smooth_sigma, not the base network)",
    "advgan_success": "empirical (AdvGAN examples confirmed on the float64 IR and the ONNX "
                      "model)",
}

COLUMNS = ("name", "clean_accuracy", "ifgsm_success", "ifgsm_mean_linf", "cw_success",
           "cw_mean_l2", "clever_linf", "lipschitz_mean", "roby", "fsa", "fsd", "fsc",
           "certified_accuracy", "empirical_accuracy", "certified_mean_lower",
           "attack_mean_upper", "pac_mean", "pac_inside", "smoothed_accuracy", "advgan_success",
           "n_samples", "n_correct")


def _num(v: Any) -> Any:
    if isinstance(v, float | np.floating):
        return float(v) if math.isfinite(v) else None
    return v


def _matrix(names: list[str], m: np.ndarray) -> dict[str, Any]:
    return {"sources": names, "targets": names, "matrix": [[_num(v) for v in row] for row in m]}


def report_to_dict(rep: StudyReport) -> dict[str, Any]:
    names = rep.names
    return {
        "data": rep.data,
        "options": asdict(rep.options),
        "guarantees": GUARANTEES,
        "models": [m.as_dict() for m in rep.models],
        "transfer": _matrix(names, rep.transfer),
        "advgan_transfer": None if rep.advgan_transfer is None else _matrix(
            names, rep.advgan_transfer),
        "pareto": list(rep.pareto),
        "correlations": [c.as_dict() for c in rep.correlations],
        "notes": list(rep.notes),
    }


def write_json(rep: StudyReport, path: str | os.PathLike[str]) -> None:
    atomic_write(path, json.dumps(report_to_dict(rep), indent=1) + "\n")


def write_csv(rep: StudyReport, path: str | os.PathLike[str]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(COLUMNS)
    for m in rep.models:
        d = m.as_dict()
        w.writerow(["" if d[c] is None else d[c] for c in COLUMNS])
    atomic_write(path, buf.getvalue())


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{100 * v:.1f}%" if pct else f"{v:.4g}"


def format_table(rep: StudyReport) -> str:
    """The per-model table, the transfer matrix, the Pareto front and the correlations."""
    head = (f"{'model':16s} {'clean':>7s} {'IFGSM':>7s} {'IFGSM d':>8s} {'CW':>6s} "
            f"{'CW L2':>7s} {'CLEVER':>7s} {'Lip r':>7s} {'ROBY':>6s} {'cert':>7s} "
            f"{'cert r':>7s} {'PAC r':>7s} {'smooth':>7s} {'AdvGAN':>7s}")
    lines = [f"I-FGSM success at eps {rep.options.eps:g}; distortions are means of the "
             "smallest found (L-inf for I-FGSM, L2 for C&W); CLEVER (L-inf) and ROBY are "
             "estimates; Lip r: mean sound Lipschitz radius (L-inf); cert: certified robust "
             "accuracy and mean certified radius; smooth: smoothed certified accuracy at "
             f"L2 radius {rep.options.smooth_radius:g}, sigma {rep.options.smooth_sigma:g} "
             "(probabilistic, the smoothed classifier); PAC r: mean "
             "DeepPAC radius (an estimate); AdvGAN: success at eps, confirmed on the ONNX "
             "model", head]
    for m in rep.models:
        lines.append(
            f"{m.name[:16]:16s} {_fmt(m.clean_accuracy, True):>7s} "
            f"{_fmt(m.ifgsm_success, True):>7s} {_fmt(m.ifgsm_mean_linf):>8s} "
            f"{_fmt(m.cw_success, True):>6s} {_fmt(m.cw_mean_l2):>7s} "
            f"{_fmt(m.clever_linf):>7s} {_fmt(m.lipschitz_mean):>7s} {_fmt(m.roby):>6s} "
            f"{_fmt(m.certified_accuracy, True):>7s} {_fmt(m.certified_mean_lower):>7s} "
            f"{_fmt(m.pac_mean):>7s} {_fmt(m.smoothed_accuracy, True):>7s} "
            f"{_fmt(m.advgan_success, True):>7s}")
    names = rep.names
    lines += _matrix_lines("transfer (I-FGSM): row = crafted on, column = evaluated on "
                           "(share fooled)", names, rep.transfer)
    if rep.advgan_transfer is not None:
        lines += _matrix_lines("transfer (AdvGAN): row = generator trained against, column "
                               "= evaluated on (share fooled, float64 IR)", names,
                               rep.advgan_transfer)
    lines += [f"note: {n}" for n in rep.notes]
    lines.append("")
    lines.append("Pareto front (clean accuracy vs 1 - I-FGSM success): " + ", ".join(rep.pareto))
    lines.append("rank correlation with the I-FGSM success rate (negative: ranks like it):")
    for c in rep.correlations:
        lines.append(f"  {c.metric:22s} n={c.n:2d} spearman {_fmt(c.spearman):>7s} "
                     f"(p {_fmt(c.spearman_p)})  kendall {_fmt(c.kendall):>7s}")
    return "\n".join(lines)


def _matrix_lines(title: str, names: list[str], m: np.ndarray) -> list[str]:
    width = max(8, *(len(n[:12]) for n in names))
    lines = ["", title, " " * 16 + " ".join(f"{n[:12]:>{width}s}" for n in names)]
    for n, row in zip(names, m, strict=True):
        lines.append(f"{n[:16]:16s}" + " ".join(f"{_fmt(v, True):>{width}s}" for v in row))
    return lines


def _heatmap(fig: Any, ax: Any, names: list[str], m: np.ndarray, rows: str, title: str) -> None:
    im = ax.imshow(np.nan_to_num(m, nan=0.0), vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_xlabel("evaluated on")
    ax.set_ylabel(rows)
    ax.set_title(title)
    fig.colorbar(im, ax=ax, shrink=0.8)


def plot_study(rep: StudyReport, path: str | os.PathLike[str]) -> None:
    """Three panels: the transfer heatmap, accuracy vs robustness with the Pareto front,
    and each estimate against the I-FGSM success rate; a fourth, second, panel with the
    AdvGAN transfer heatmap when the study ran AdvGAN."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise InputError("matplotlib is needed for --plot: pip install matplotlib") from None
    names = rep.names
    gan = rep.advgan_transfer is not None
    fig = Figure(figsize=(21 if gan else 16, 5), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 4 if gan else 3)
    a, b, c = axes[0], axes[-2], axes[-1]
    _heatmap(fig, a, names, rep.transfer, "crafted on",
             f"transfer success (I-FGSM, eps {rep.options.eps:g})")
    if gan:
        _heatmap(fig, axes[1], names, rep.advgan_transfer, "generator trained against",
                 f"transfer success (AdvGAN, eps {rep.options.eps:g})")
    acc = [m.clean_accuracy for m in rep.models]
    rob = rep.robustness()
    b.scatter(acc, rob, color="tab:blue")
    for n, x, y in zip(names, acc, rob, strict=True):
        b.annotate(n, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    front = [names.index(n) for n in rep.pareto]
    if front:
        b.plot([acc[i] for i in front], [rob[i] for i in front], "--", color="tab:red",
               label="Pareto front")
        b.legend(fontsize=7)
    b.set_xlabel("clean accuracy")
    b.set_ylabel(f"1 - I-FGSM success at eps {rep.options.eps:g}")
    b.set_title("accuracy vs robustness")
    asr = [m.ifgsm_success for m in rep.models]
    for key, colour in (("clever_linf", "tab:green"), ("ifgsm_mean_linf", "tab:orange"),
                        ("certified_mean_lower", "tab:purple")):
        vals = [getattr(m, key) for m in rep.models]
        if any(v is not None and math.isfinite(v) for v in vals):
            c.scatter(asr, [math.nan if v is None else v for v in vals], color=colour,
                      label=key)
    c.set_xlabel("I-FGSM success rate")
    c.set_ylabel("radius (L-inf, raw input units)")
    c.set_title("estimates and radii vs attack success")
    c.legend(fontsize=7)
    try:
        fig.savefig(os.fspath(path), dpi=110)
    except (OSError, ValueError) as e:
        raise InputError(f"cannot write plot {path}: {' '.join(str(e).split())}") from None
