"""What DeepPAC does for every sample of a data file (:class:`PacRun`), its report
settings, and one sample's record (:func:`run_pac`).  The dataset loop that turns records
into reports lives in :mod:`verinet.runs` (it serves ``verinet certify --pac`` and
``verinet pac`` alike)."""

from __future__ import annotations

from dataclasses import dataclass

from verinet.pac.result import PacRecord
from verinet.pac.sampling import FeatureMap
from verinet.pac.scenario import PacOptions
from verinet.pac.search import RadiusSearch, pac_at, pac_radius
from verinet.pac.verdict import PacProblem
from verinet.types import InputError


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
