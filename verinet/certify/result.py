"""Typed results of ``verinet certify``: one :class:`SampleReport` per sample, and the
:class:`CertifyReport` that holds them with the run's settings and its summary.

Every radius is an L-inf distance in *raw* input space (normalisation is the network's
first layer).  ``radius`` is a :class:`~verinet.types.Sandwich`: ``lower`` is a sound
lower bound (or exact), ``upper`` the distance of a confirmed adversarial example (or
``inf`` when none was found); constructing it raises ``SoundnessError`` if they cross.
A DeepPAC record (``pac``) sits beside the sandwich: a PAC radius is an estimate with an
``(epsilon, eta)`` guarantee, never a bound, and never counts as certified; so does a
CLEVER estimate (``clever``), flagged when it exceeds the attack upper bound.  The sound
Lipschitz radii (``lipschitz``) are lower bounds like the sandwich's own: a witness closer
than them is a soundness error.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

import numpy as np

from verinet.pac.result import PacRecord, PacVerdict
from verinet.types import Reason, Sandwich, SoundnessError, frozen_array


class SampleStatus(enum.Enum):
    """Verdict for one sample at the requested eps."""

    VERIFIED = "verified"            # robust at eps: proven by sound bounds or exact search
    FALSIFIED = "falsified"          # a confirmed adversarial example within eps
    UNKNOWN = "unknown"              # neither; see the reason
    MISCLASSIFIED = "misclassified"  # the clean sample is already misclassified
    NOT_ASKED = "not-asked"          # no eps was given (radius-only run)
    ERROR = "error"                  # the sample's work failed (the message says why)


@dataclass(frozen=True)
class Witness:
    """A confirmed adversarial example: raw input ``x`` (flat), the class it is given,
    its L-inf distance from the sample and the attack or engine that found it."""

    x: np.ndarray
    predicted: int
    distance: float
    method: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "x", frozen_array(self.x).reshape(-1))


@dataclass(frozen=True)
class CleverEstimate:
    """Untargeted L-inf CLEVER next to the sandwich (an **estimate**, never a bound):
    ``score`` (capped at ``sampling_radius``), the class ``target`` that attains it and
    the sampling settings (Nb ``batches`` of ``batch_size`` points, ``seed``)."""

    score: float
    target: int
    sampling_radius: float
    batches: int
    batch_size: int
    seed: int


@dataclass(frozen=True)
class LipschitzBound:
    """The sound Lipschitz radii of one sample (L-inf, raw input units): ``radius`` from
    local bounds on the margins' gradients over the ball ``ball``
    (:func:`verinet.lipschitz.lipschitz_radius`), ``global_radius`` from the network's
    global constant (:func:`verinet.lipschitz.global_bound.global_lipschitz`).  Both are
    certified lower bounds of the radius; the larger one enters the sandwich when it is
    the largest lower end."""

    radius: float
    global_radius: float
    ball: float

    @property
    def best(self) -> float:
        return max(self.radius, self.global_radius)


@dataclass(frozen=True)
class SampleReport:
    """What verinet established about one sample.

    ``radius`` is None when radii were not requested and nothing bounds it (it is always
    set for misclassified samples: ``[0, 0]``).  ``exact`` is True when
    ``radius.upper - radius.lower <= tolerance`` (or the whole domain is proven robust).
    ``attacks``: the smallest confirmed distance each attack reached (``inf``: none).
    ``pac``: the DeepPAC record (PAC radius, verdict at eps, settings) when it ran; an
    unsafe PAC verdict is a confirmed counterexample, so it may not lie below the
    certified radius.
    """

    index: int
    label: int
    predicted: int
    status: SampleStatus
    reason: Reason = Reason.NONE
    eps: float | None = None
    radius: Sandwich | None = None
    exact: bool = False
    witness: Witness | None = None
    seconds: float = 0.0
    timings: tuple[tuple[str, float], ...] = field(default_factory=tuple)
    message: str = ""
    attacks: tuple[tuple[str, float], ...] = field(default_factory=tuple)
    pac: PacRecord | None = None
    clever: CleverEstimate | None = None
    lipschitz: LipschitzBound | None = None

    @property
    def clever_exceeds_upper(self) -> bool | None:
        """CLEVER above the attack's upper bound: a confirmed adversarial example is closer
        than the estimate (a sign of gradient masking or over-estimation); None without
        CLEVER or an upper bound."""
        if self.clever is None or self.radius is None or not math.isfinite(self.radius.upper):
            return None
        return self.clever.score > self.radius.upper

    def __post_init__(self) -> None:
        r, w = self.radius, self.witness
        if self.pac is not None and r is not None:
            d = self.pac.closest_distance()
            if d < r.lower - r.tol:
                raise SoundnessError(
                    f"sample {self.index}: a PAC counterexample at distance {d!r} lies below "
                    f"the certified radius {r.lower!r} ({r.lower_by})")
        lip = self.lipschitz
        if lip is not None and w is not None and w.distance < lip.best - (0.0 if r is None
                                                                          else r.tol):
            raise SoundnessError(
                f"sample {self.index}: witness at distance {w.distance!r} lies below the "
                f"Lipschitz radius {lip.best!r}")
        if w is not None and r is not None and w.distance < r.lower - r.tol:
            raise SoundnessError(
                f"sample {self.index}: witness at distance {w.distance!r} lies below the "
                f"certified radius {r.lower!r} ({r.lower_by})"
            )
        if self.status is SampleStatus.FALSIFIED and w is None:
            raise SoundnessError(f"sample {self.index}: falsified without a witness")
        if self.status is SampleStatus.VERIFIED and self.eps is not None and r is not None:
            if r.upper < self.eps:
                raise SoundnessError(
                    f"sample {self.index}: verified at eps {self.eps} but an adversarial "
                    f"example lies at {r.upper}"
                )

    @property
    def correct(self) -> bool:
        return self.label == self.predicted


@dataclass(frozen=True)
class Summary:
    """Counts and accuracies at the run's eps (None when no eps was given)."""

    n: int
    correct: int
    verified: int | None
    falsified: int | None
    unknown: int | None
    exact_radii: int
    errors: int = 0

    @property
    def clean_accuracy(self) -> float:
        return self.correct / self.n if self.n else math.nan

    @property
    def certified_accuracy(self) -> float | None:
        return None if self.verified is None or not self.n else self.verified / self.n

    @property
    def empirical_accuracy(self) -> float | None:
        """Share of samples with no confirmed adversarial example within eps (an upper
        bound on the true robust accuracy)."""
        if self.falsified is None or not self.n:
            return None
        return (self.correct - self.falsified) / self.n


@dataclass(frozen=True)
class PacComparison:
    """Where the PAC radii fall relative to the sandwiches, over the correctly classified
    samples that have both: ``inside`` ``lower <= pac <= upper``, ``above`` the attack
    upper bound, ``below`` the certified lower bound (``n = inside + above + below``).
    ``robust``/``unsafe``/``unknown``: PAC verdicts at the run's eps (None: not asked)."""

    n: int
    inside: int
    above: int
    below: int
    robust: int | None = None
    unsafe: int | None = None
    unknown: int | None = None

    @staticmethod
    def of(samples: tuple[SampleReport, ...]) -> PacComparison | None:
        recs = [(r, r.pac) for r in samples if r.pac is not None]
        if not recs:
            return None
        inside = above = below = 0
        for r, p in recs:
            if not r.correct or r.radius is None or p.radius is None:
                continue
            if p.radius > r.radius.upper:
                above += 1
            elif p.radius < r.radius.lower:
                below += 1
            else:
                inside += 1
        verdicts = [p.at_eps.verdict for _, p in recs if p.at_eps is not None]
        if not verdicts:
            return PacComparison(inside + above + below, inside, above, below)
        count = {v: sum(x is v for x in verdicts) for v in PacVerdict}
        return PacComparison(inside + above + below, inside, above, below,
                             count[PacVerdict.ROBUST], count[PacVerdict.UNSAFE],
                             count[PacVerdict.UNKNOWN])


@dataclass(frozen=True)
class CertifyReport:
    """Every sample's report plus the settings that produced them."""

    model: str
    data: str
    samples: tuple[SampleReport, ...]
    eps: float | None = None
    tolerance: float = 1e-3
    seed: int = 0
    settings: tuple[tuple[str, object], ...] = field(default_factory=tuple)
    seconds: float = 0.0

    def summary(self) -> Summary:
        s = self.samples
        correct = sum(r.correct for r in s)
        exact = sum(r.exact for r in s)
        count = {st: sum(r.status is st for r in s) for st in SampleStatus}
        errors = count[SampleStatus.ERROR]
        if self.eps is None:
            return Summary(len(s), correct, None, None, None, exact, errors)
        return Summary(len(s), correct, count[SampleStatus.VERIFIED],
                       count[SampleStatus.FALSIFIED], count[SampleStatus.UNKNOWN], exact,
                       errors)

    def pac_comparison(self) -> PacComparison | None:
        """PAC radii against the sandwiches (None when DeepPAC did not run)."""
        return PacComparison.of(self.samples)

    def curves(self, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(certified, empirical) robust accuracy at each eps of ``grid`` from the radii.

        The unsafe set is closed (ties count as misclassified), so the exact radius is
        attained and a sample is robust at e iff its radius exceeds e.  Certified at e:
        correct and ``radius.lower > e``, or verified at the run's eps >= e (at e = 0 the
        clean accuracy).  Empirical at e: correct and ``radius.upper > e`` (no confirmed
        adversarial example within e).  Samples without a radius count as certified
        only through their verdict, and as not attacked."""
        grid = np.asarray(grid, dtype=np.float64)
        n = len(self.samples)
        cert = np.zeros(grid.size)
        emp = np.zeros(grid.size)
        for r in self.samples:
            if not r.correct:
                continue
            proven = grid <= 0
            if r.status is SampleStatus.VERIFIED and r.eps is not None:
                proven |= grid <= r.eps
            if r.radius is None:
                cert += proven
                emp += 1.0 if r.witness is None else r.witness.distance > grid
                continue
            cert += proven | (r.radius.lower > grid)
            emp += r.radius.upper > grid
        if n:
            cert /= n
            emp /= n
        return cert, emp
