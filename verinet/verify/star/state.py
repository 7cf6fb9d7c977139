"""The star search's values: its options, its outcome, its counters and a queued star.

All of them cross process boundaries (:mod:`verinet.verify.star.pool` pickles stacks of
:class:`Star` and the :class:`Stats` of a slice), so they hold numpy arrays and numbers
only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from verinet.types import Counterexample
from verinet.verify.star.lp import Cons

Bounds = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class StarOptions:
    """``overapprox``: run the CROWN over-approximation before each split (``"crown"``)
    or never (``"none"``, pure enumeration).  ``max_stars``: give up (not proven) after
    this many stars."""

    overapprox: str = "crown"
    contract: bool = True
    vertices: bool = True     # certified bounds from the polytope's vertices (else LPs)
    tighten_layer: bool = False
    max_stars: int = 5_000_000
    workers: int = 0          # processes for the search; 0: every usable core
    serial_s: float = 0.5     # search alone this long before starting workers
    slice_s: float = 0.25     # a worker hands its stack back after this long

    def __post_init__(self) -> None:
        if self.overapprox not in ("crown", "none"):
            raise ValueError(f"unknown over-approximation {self.overapprox!r}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")
        if not (self.serial_s >= 0.0 and self.slice_s > 0.0):
            raise ValueError("serial_s must be >= 0 and slice_s > 0")


@dataclass(frozen=True)
class StarOutcome:
    """``proven`` is True iff every listed term was shown unreachable."""

    proven: bool
    counterexample: Counterexample | None
    stars: int          # stars created (root + one per split)
    leaves: int         # stars that reached the output layer
    lps: int            # LP solves
    overapprox: int     # over-approximation passes
    dropped: int        # stars dropped by an over-approximation
    unresolved: int     # output stars neither proven nor confirmed


@dataclass
class Stats:
    """The counters of a search (or of one worker's slice of it)."""

    stars: int = 1
    leaves: int = 0
    overapprox: int = 0
    dropped: int = 0
    unresolved: int = 0

    def outcome(self, proven: bool, cex: Counterexample | None, lps: int) -> StarOutcome:
        return StarOutcome(proven, cex, self.stars, self.leaves, lps, self.overapprox,
                           self.dropped, self.unresolved)


@dataclass(frozen=True)
class Star:
    """A star waiting on the stack: at ReLU layer ``layer``, the neurons in ``done`` are
    processed (their rows of ``M, c`` are post-activations).

    ``prior[i]`` are sound bounds over the star of ReLU layer ``layer + i`` (or None)."""

    layer: int
    done: np.ndarray
    M: np.ndarray
    c: np.ndarray
    cons: Cons | None
    lo: np.ndarray
    hi: np.ndarray
    prior: tuple[Bounds | None, ...]
    terms: tuple[int, ...]
    pts: np.ndarray  # points known to lie in the star (hints for phase decisions)
    ext: np.ndarray  # (2d, d) the parent's minimisers/maximisers of each x_i (nan: none)
    inner: np.ndarray | None  # a point strictly inside the polytope (None: not known)
