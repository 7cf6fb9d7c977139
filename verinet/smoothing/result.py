"""Typed results of randomized smoothing, each labelled with its guarantee.

Every number here is about the **smoothed** classifier ``g`` (Gaussian noise of std
``sigma``), never about the base network ``f``, and holds **with probability at least
1 - alpha** over the noise draws (:class:`SmoothingGuarantee`).  None of them is a sound
bound: they are never turned into a :class:`~verinet.types.Sandwich` and never enter
``verinet certify``'s certified radii or accuracies (which are about ``f``).

* :class:`Certificate`: the outcome of ``CERTIFY`` for one sample -- the class and the
  certified L2 radius, or an abstention.
* :class:`Prediction`: the outcome of ``PREDICT`` for one sample -- a class or an
  abstention.
* :class:`SmoothingReport`: a run over samples; :meth:`SmoothingReport.curve` is the
  certified accuracy over L2 radius (:func:`certified_accuracy`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from verinet.smoothing.options import SmoothingOptions

KIND = "probabilistic"
MODES = ("certify", "predict")


@dataclass(frozen=True)
class SmoothingGuarantee:
    """What a smoothing result guarantees: ``kind`` "probabilistic", at ``confidence``
    ``1 - alpha`` over the noise draws, for the smoothed classifier of noise ``sigma``
    (not the base network), in the L2 norm of the raw input space."""

    confidence: float
    sigma: float
    kind: str = KIND
    of: str = "smoothed classifier"
    norm: str = "l2"

    @property
    def statement(self) -> str:
        return (f"probabilistic, at confidence 1 - alpha = {self.confidence:g}, for the "
                f"smoothed classifier (Gaussian noise sigma = {self.sigma:g}), not the base "
                "network")

    def as_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "confidence": self.confidence, "sigma": self.sigma,
                "of": self.of, "norm": self.norm, "statement": self.statement}


def guarantee_of(options: SmoothingOptions) -> SmoothingGuarantee:
    return SmoothingGuarantee(confidence=1.0 - options.alpha, sigma=options.sigma)


class _Outcome:
    """What CERTIFY and PREDICT results share: the guarantee, abstention, correctness
    (fields ``prediction``, ``label``, ``sigma``, ``alpha`` of the dataclass)."""

    prediction: int | None
    label: int | None
    sigma: float
    alpha: float

    @property
    def guarantee(self) -> SmoothingGuarantee:
        return SmoothingGuarantee(confidence=1.0 - self.alpha, sigma=self.sigma)

    @property
    def abstained(self) -> bool:
        return self.prediction is None

    @property
    def correct(self) -> bool:
        """A class was returned and it is the label."""
        return self.prediction is not None and self.prediction == self.label


@dataclass(frozen=True)
class Certificate(_Outcome):
    """``CERTIFY`` on sample ``index`` (true ``label``, None if unknown).

    ``selected``: the class the ``n0`` selection draws voted for (``selection_count``
    votes); ``count``: its votes among the ``n`` estimation draws; ``p_lower``: the
    Clopper-Pearson lower bound on its probability at ``alpha``.  ``prediction`` is
    ``selected`` when ``p_lower > 1/2`` and None (abstain) otherwise; ``radius`` is
    ``sigma * Phi^-1(p_lower)`` (L2, raw input space) or None on abstention.
    Guarantee (:attr:`guarantee`): with probability >= 1 - alpha, if a class is returned,
    ``g(x + d) = prediction`` for every ``||d||_2 < radius``.
    """

    index: int
    label: int | None
    prediction: int | None
    selected: int
    selection_count: int
    count: int
    n0: int
    n: int
    p_lower: float
    radius: float | None
    sigma: float
    alpha: float
    seconds: float

    def __post_init__(self) -> None:
        if (self.prediction is None) != (self.radius is None):
            raise ValueError("a certificate has both a prediction and a radius, or neither")
        if self.radius is not None and not self.radius > 0:
            raise ValueError(f"certified radius must be > 0, got {self.radius}")

    def certified_at(self, r: float) -> bool:
        """Correct with a certified radius of at least ``r``."""
        return self.correct and self.radius is not None and self.radius >= r


@dataclass(frozen=True)
class Prediction(_Outcome):
    """``PREDICT`` on sample ``index``: the top two classes of ``n`` draws with their
    ``counts``, the two-sided binomial ``p_value`` of their split and ``prediction`` (the
    top class when ``p_value <= alpha``, else None: abstain).  Guarantee: the probability
    that a returned class is not ``g(x)`` is at most ``alpha``."""

    index: int
    label: int | None
    prediction: int | None
    top: tuple[int, int]
    counts: tuple[int, int]
    n: int
    p_value: float
    sigma: float
    alpha: float
    seconds: float


def certified_accuracy(certificates: Sequence[Certificate],
                       radii: Sequence[float] | np.ndarray) -> np.ndarray:
    """Share of ``certificates`` certified correct with radius ``>= r``, for each ``r`` in
    ``radii`` (over all samples: abstentions and wrong classes count as failures)."""
    r = np.asarray(radii, dtype=np.float64).reshape(-1)
    if not certificates:
        return np.zeros_like(r)
    got = np.array([c.radius if c.correct and c.radius is not None else -math.inf
                    for c in certificates])
    return (got[None, :] >= r[:, None]).mean(axis=1)


def radius_grid(certificates: Sequence[Certificate]) -> np.ndarray:
    """0 and every certified-correct radius, sorted and unique: the points where the
    curve changes (it is left-continuous: constant on each ``(r_{i-1}, r_i]``)."""
    pts = [0.0] + [c.radius for c in certificates if c.correct and c.radius is not None]
    return np.unique(np.asarray(pts, dtype=np.float64))


@dataclass(frozen=True)
class SmoothingReport:
    """A smoothing run: ``mode`` "certify" (``samples`` are :class:`Certificate`) or
    "predict" (:class:`Prediction`), with its options, model and data names, and the
    wall-clock seconds."""

    mode: str
    options: SmoothingOptions
    samples: tuple[Certificate | Prediction, ...]
    model: str = ""
    data: str = ""
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        want = Certificate if self.mode == "certify" else Prediction
        if not all(isinstance(s, want) for s in self.samples):
            raise ValueError(f"a {self.mode} report holds {want.__name__} samples only")

    @property
    def guarantee(self) -> SmoothingGuarantee:
        return guarantee_of(self.options)

    @property
    def certificates(self) -> tuple[Certificate, ...]:
        return tuple(s for s in self.samples if isinstance(s, Certificate))

    @property
    def n(self) -> int:
        return len(self.samples)

    @property
    def abstained(self) -> int:
        return sum(s.abstained for s in self.samples)

    @property
    def correct(self) -> int:
        return sum(s.correct for s in self.samples)

    def curve(self, radii: Sequence[float] | np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
        """``(radii, certified accuracy)``; ``radii`` default to :func:`radius_grid`."""
        certs = self.certificates
        r = radius_grid(certs) if radii is None else np.asarray(radii, dtype=np.float64)
        return r, certified_accuracy(certs, r)
