"""Typed results of DeepPAC: one verdict (:class:`PacCheck`) and a sample's record
(:class:`PacRecord`: the settings, every verdict, the maximum PAC radius).

A PAC number carries :attr:`verinet.types.Guarantee.PAC`: it is never a sound bound and
is never counted as certified.  Only an UNSAFE verdict is a fact: its counterexample was
replayed on the IR (float64) and on the original ONNX model.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np

from verinet.pac.scenario import ScenarioCounts
from verinet.types import Counterexample, Guarantee, SoundnessError


class PacVerdict(enum.Enum):
    """DeepPAC's verdicts: 1 = PAC-model robust, 0 = unsafe, 2 = unknown."""

    ROBUST = "pac-robust"  # every U_j < 0: the PAC model is robust on the ball
    UNSAFE = "unsafe"      # a confirmed counterexample (vertex or sampled point)
    UNKNOWN = "unknown"    # some U_j >= 0 and no candidate was confirmed


@dataclass(frozen=True)
class PacCheck:
    """One (sample, radius) verdict.

    ``margin``: Phase 3's ``lambda*``; ``upper``: ``max_j U_j`` (the model's bound on the
    largest score difference over the ball, margin included) and ``rival`` its class;
    ``counterexample``: the closest confirmed misclassified point (UNSAFE only), found
    at a box vertex or among the samples (``source``), at L-inf ``distance``.
    """

    radius: float
    verdict: PacVerdict
    margin: float
    upper: float
    rival: int
    counts: ScenarioCounts
    counterexample: Counterexample | None = None
    source: str = ""
    distance: float = math.inf
    seconds: float = 0.0
    phase1: str = ""

    def __post_init__(self) -> None:
        unsafe = self.verdict is PacVerdict.UNSAFE
        cex = self.counterexample
        if unsafe != (cex is not None and cex.confirmed):
            raise SoundnessError(f"PAC verdict {self.verdict.value} at radius {self.radius!r} "
                                 "must come with a confirmed counterexample iff unsafe")
        if unsafe and not self.distance <= self.radius * (1 + 1e-12) + 1e-12:
            raise SoundnessError(f"PAC counterexample at distance {self.distance!r} lies "
                                 f"outside the ball of radius {self.radius!r}")
        if self.verdict is PacVerdict.ROBUST and not self.upper < 0:
            raise SoundnessError(f"PAC-robust with U = {self.upper!r} >= 0")


@dataclass(frozen=True)
class PacRecord:
    """DeepPAC on one sample: the settings behind its numbers and every verdict made.

    ``radius``: the largest radius found PAC-robust (raw input units; ``None`` when no
    search ran) -- on the ``grid`` (``grid_radius``) and, when ``continuous``, refined
    between grid points to ``tolerance``.  ``at_eps``: the verdict at the run's eps.
    ``checks``: every verdict of the search in the order made.
    """

    epsilon: float
    eta: float
    counts: ScenarioCounts
    phase1: str
    seed: int
    radius: float | None = None
    grid: float | None = None
    grid_radius: float | None = None
    continuous: bool = False
    tolerance: float | None = None
    at_eps: PacCheck | None = None
    checks: tuple[PacCheck, ...] = ()
    seconds: float = 0.0

    guarantee = Guarantee.PAC

    def __post_init__(self) -> None:
        if self.radius is not None:
            hit = [c for c in self.checks if c.radius == self.radius]
            if self.radius > 0 and not any(c.verdict is PacVerdict.ROBUST for c in hit):
                raise SoundnessError(f"PAC radius {self.radius!r} without a robust verdict")

    @property
    def counterexample(self) -> PacCheck | None:
        """The unsafe check whose counterexample lies closest to the sample."""
        unsafe = [c for c in self._all() if c.verdict is PacVerdict.UNSAFE]
        return min(unsafe, key=lambda c: c.distance) if unsafe else None

    @property
    def verdicts(self) -> int:
        """Number of verdicts (each costs ``counts.forward_passes`` forward passes)."""
        return len(self._all())

    @property
    def joint_eta(self) -> float:
        """Significance of all verdicts holding together (union bound)."""
        return min(1.0, self.verdicts * self.eta)

    def _all(self) -> tuple[PacCheck, ...]:
        return self.checks + (() if self.at_eps is None else (self.at_eps,))

    def closest_distance(self) -> float:
        c = self.counterexample
        return math.inf if c is None else c.distance

    def witness_x(self) -> np.ndarray | None:
        c = self.counterexample
        return None if c is None or c.counterexample is None else c.counterexample.x
