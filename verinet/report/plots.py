"""Figure of a certify report (``verinet certify --plot FILE``); needs matplotlib.

Left: every sample's radius sandwich as a vertical segment from the certified lower bound
to the attack upper bound (linear scale, so misclassified samples sit at 0), coloured by
status; an upper bound of +inf (no adversarial example found) is drawn up to the top
edge with a triangle, an exact radius as a dot, and a DeepPAC radius (an estimate, not a
bound) as a purple diamond beside its sample's segment.  Right: certified (lower bound) and
empirical (upper bound) robust accuracy over eps; the true curve lies in the shaded band.

matplotlib is imported inside :func:`plot_report` and drawn through its Agg canvas
directly, so neither importing this module nor plotting touches pyplot's global state.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from verinet.certify.result import CertifyReport, SampleStatus
from verinet.report.certify import curve_grid
from verinet.types import InputError

COLOURS = {
    SampleStatus.VERIFIED: "tab:green",
    SampleStatus.FALSIFIED: "tab:red",
    SampleStatus.UNKNOWN: "tab:orange",
    SampleStatus.MISCLASSIFIED: "tab:gray",
    SampleStatus.NOT_ASKED: "tab:blue",
}


PAC_COLOUR = "tab:purple"


def _pac_points(report: CertifyReport) -> tuple[np.ndarray, np.ndarray]:
    """(sample index, PAC radius) of every sample with a PAC radius."""
    pts = [(r.index, r.pac.radius) for r in report.samples
           if r.pac is not None and r.pac.radius is not None]
    return (np.array([p[0] for p in pts], dtype=float),
            np.array([p[1] for p in pts], dtype=float))


def _top(report: CertifyReport) -> float:
    """Upper y limit of the sandwich panel: above every finite end, PAC radius and eps."""
    ends = [report.eps or 0.0, *_pac_points(report)[1].tolist()]
    for r in report.samples:
        if r.radius is not None:
            ends += [e for e in (r.radius.lower, r.radius.upper) if np.isfinite(e)]
    top = max(ends)
    return 1.15 * top if top > 0 else 1.0


def _draw_sandwiches(ax: Any, report: CertifyReport) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    top = _top(report)
    handles = []
    any_inf = any_exact = False
    for status, colour in COLOURS.items():
        rs = [r for r in report.samples if r.status is status and r.radius is not None]
        if not rs:
            continue
        x = np.array([r.index for r in rs], dtype=float)
        lo = np.array([r.radius.lower for r in rs if r.radius is not None])
        hi = np.array([r.radius.upper for r in rs if r.radius is not None])
        inf = ~np.isfinite(hi)
        ax.vlines(x, lo, np.where(inf, top, hi), colors=colour, linewidth=2)
        ax.scatter(x[inf], np.full(inf.sum(), top), marker="^", color=colour, s=25,
                   clip_on=False, zorder=3)
        exact = np.array([r.exact for r in rs])
        ax.scatter(x[exact], lo[exact], marker="o", color=colour, s=14, zorder=3)
        handles.append(Line2D([], [], color=colour, linewidth=2,
                              label=f"{status.value} ({len(rs)})"))
        any_inf, any_exact = any_inf or bool(inf.any()), any_exact or bool(exact.any())
    px, pr = _pac_points(report)
    if px.size:
        ax.scatter(px + 0.15, pr, marker="D", color=PAC_COLOUR, s=16, zorder=4)
        handles.append(Line2D([], [], color=PAC_COLOUR, marker="D", linestyle="",
                              label=f"PAC radius ({px.size}; estimate)"))
    if any_exact:
        handles.append(Line2D([], [], color="black", marker="o", linestyle="",
                              label="exact radius"))
    if any_inf:
        handles.append(Line2D([], [], color="black", marker="^", linestyle="",
                              label="no adversarial example found"))
    if report.eps is not None:
        ax.axhline(report.eps, color="black", linestyle="--", linewidth=1)
        handles.append(Line2D([], [], color="black", linestyle="--",
                              label=f"eps = {report.eps:g}"))
    ax.set_ylim(-0.02 * top, top)  # radius-0 (misclassified) samples stay visible
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("sample index")
    ax.set_ylabel("L-inf radius (raw input space)")
    ax.set_title("radius: certified lower .. attack upper"
                 + (" (and PAC)" if px.size else ""))
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))


def _draw_curves(ax: Any, report: CertifyReport) -> None:
    grid = curve_grid(report)
    cert, emp = report.curves(grid)
    right = max(float(grid[-1]), report.eps or 0.0)
    right = 1.1 * right if right > 0 else 0.1
    # Extend the last step to the right edge: nothing changes after the last grid point.
    xs = np.append(grid, right)
    cert, emp = np.append(cert, cert[-1]), np.append(emp, emp[-1])
    ax.fill_between(xs, cert, emp, step="post", color="tab:blue", alpha=0.15,
                    label="true robust accuracy lies here")
    ax.step(xs, emp, where="post", color="tab:red", label="empirical (upper bound)")
    ax.step(xs, cert, where="post", color="tab:green", label="certified (lower bound)")
    if report.eps is not None:
        ax.axvline(report.eps, color="black", linestyle="--", linewidth=1)
    ax.set_xlim(0, right)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("eps (L-inf, raw input space)")
    ax.set_ylabel("robust accuracy")
    ax.set_title("robust accuracy over eps")
    ax.legend(fontsize=7, loc="best")


def plot_report(report: CertifyReport, path: str | os.PathLike[str]) -> None:
    """Draw the two panels and save them to ``path`` (format from the suffix, e.g. .png)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise InputError("matplotlib is needed for --plot: pip install matplotlib") from None
    fig = Figure(figsize=(12, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    _draw_sandwiches(left, report)
    _draw_curves(right, report)
    fig.suptitle(f"{report.model} on {report.data}", fontsize=9)
    try:
        fig.savefig(os.fspath(path), dpi=110)
    except (OSError, ValueError) as e:
        raise InputError(f"cannot write plot {path}: {' '.join(str(e).split())}") from None
