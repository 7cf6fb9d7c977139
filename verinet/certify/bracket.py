"""The running bracket ``lower <= radius <= upper`` of one sample, and witness replay.

Only two things move the bracket: a *proof* (``prove``: the radius exceeds ``eps`` /
is at least ``value``) and a *confirmed* adversarial example (``witness``: replayed on
the IR and on the original ONNX model inside the closed ball of its distance, exactly as
the verifier replays a ``sat`` witness).  Everything else is a candidate.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from verinet.certify.result import Witness
from verinet.ir.graph import Network
from verinet.spec.property import Property
from verinet.types import Box, Guarantee, Sandwich, SoundnessError, linf_ball_bounds, linf_reach
from verinet.verify.witness import OnnxEval, Replayer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sample:
    """One sample to certify: raw flat input, label, domain (per-coordinate bounds)."""

    x0: np.ndarray
    label: int
    domain: tuple[np.ndarray, np.ndarray]

    def ball(self, eps: float) -> Box:
        return Box(*linf_ball_bounds(self.x0, eps, *self.domain))

    def distance(self, x: np.ndarray) -> float:
        return float(np.max(np.abs(np.asarray(x, dtype=np.float64).reshape(-1) - self.x0)))

    @property
    def max_distance(self) -> float:
        """The largest distance any point of the domain has from ``x0``."""
        return linf_reach(self.x0, *self.domain)


def confirm_witness(network: Network, onnx_eval: OnnxEval | None, sample: Sample,
                    x: np.ndarray, method: str) -> Witness | None:
    """A Witness if ``x`` (snapped to float32 inside the ball of its distance) is
    misclassified (ties count) by the IR and by the original ONNX model, else None."""
    x = np.clip(np.asarray(x, dtype=np.float64).reshape(-1), *sample.domain)
    d = sample.distance(x)
    prop = Property.robustness(sample.ball(d), sample.label, network.n_outputs)
    cex = Replayer(network, prop, onnx_eval).confirm(x)
    if cex is None:
        return None
    y = cex.y_onnx if cex.y_onnx is not None else cex.y
    others = np.delete(np.arange(y.size), sample.label)
    predicted = int(others[np.argmax(y[others])])
    return Witness(cex.x, predicted, sample.distance(cex.x), method)


@dataclass
class Bracket:
    """Mutable bookkeeping of one sample's bracket (never escapes the certify package).

    ``robust_at``: the largest eps with a proof that the closed ball holds no adversarial
    example (so the radius is > ``robust_at``); ``lower``: a proven lower bound on the
    radius (>= ``robust_at``); ``upper``/``witness``: the closest confirmed example.
    """

    robust_at: float = 0.0
    robust_by: str = "none"
    lower: float = 0.0
    lower_by: str = "none"
    upper: float = math.inf
    witness: Witness | None = None

    def prove_robust(self, eps: float, method: str) -> None:
        if self.witness is not None and eps >= self.upper:
            raise SoundnessError(
                f"{method} proves robustness at eps {eps!r} but {self.witness.method} found "
                f"an adversarial example at distance {self.upper!r}")
        if eps > self.robust_at:
            self.robust_at, self.robust_by = eps, method
        self.prove_lower(eps, method)

    def prove_lower(self, value: float, method: str, tol: float = 0.0) -> None:
        """Record ``radius >= value``; ``tol`` is the prover's stated tolerance (a value
        within ``tol`` above the closest witness is clamped to it, beyond is a bug)."""
        if value > self.upper + tol:
            raise SoundnessError(
                f"{method} proves radius >= {value!r} but {self.upper_by} found an "
                f"adversarial example at distance {self.upper!r}")
        value = min(value, self.upper)
        if value > self.lower:
            self.lower, self.lower_by = value, method

    def offer(self, w: Witness | None) -> bool:
        if w is None:
            return False
        if w.distance <= self.robust_at or w.distance < self.lower - 1e-12:
            raise SoundnessError(
                f"{w.method} found an adversarial example at distance {w.distance!r} below "
                f"the certified radius {self.lower!r} ({self.lower_by})")
        if w.distance < self.upper:
            self.upper, self.witness = w.distance, w
            return True
        return False

    @property
    def upper_by(self) -> str:
        return self.witness.method if self.witness is not None else "none"

    @property
    def gap(self) -> float:
        return self.upper - self.lower

    def sandwich(self) -> Sandwich:
        return Sandwich(self.lower, self.upper, self.lower_by, self.upper_by,
                        Guarantee.SOUND, Guarantee.EMPIRICAL)
