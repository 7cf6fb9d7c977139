"""The one floating-point slack rule behind every sound bound.

A bound computed in floating point is a bound of the real-valued network only after it is
widened outward by the rounding error of its own computation.  Every engine tracks,
alongside each bound, the magnitude ``M`` of every term that entered it (absolute values
of all products and constants summed into it) and widens the bound by

    ``slack(M) = rel * |M| + abs``.

Why that suffices: any sum of ``n`` floating-point terms, in any order (pairwise, blocked
BLAS, fused multiply-add), is within ``gamma_n * sum |terms|`` of the exact sum, with
``gamma_n = n u / (1 - n u)`` and ``u`` the unit roundoff (Higham, *Accuracy and Stability
of Numerical Algorithms*, Lemma 3.1 and Section 3.1).  A bound that composes such sums
along a path of ``n`` roundings (every layer's dot product, every relaxation, the cast of
float64 parameters to a lower precision) stays within ``gamma_n * M``.

* **float64** (the default of every engine): ``rel = 1e-10``, ``abs = 1e-12``.  That
  dominates ``gamma_n`` for ``n <= 10^5`` roundings on any path (``gamma = 1.1e-11``), ten
  times over; :meth:`Slack.for_dtype` grows ``rel`` beyond ``10^5``.
* **float32**: ``rel = 2 gamma_n`` for the caller's ``n`` (no floor): sound, but about
  ``10^3 n`` times the float64 slack, so engines optimise in float32 and certify in
  float64 where the margin is thin.
* Lower precisions (float16, bfloat16, TF32 convolutions) are refused: engines that run on
  a GPU disable TF32 for their kernels.

``abs`` covers underflow (subnormal results lose relative accuracy): ``1e-12`` is many
orders above what ``10^5`` underflows can cost in either precision.

This module is the only place these constants live.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

T = TypeVar("T")

FLOAT64_REL = 1e-10
ABS = 1e-12
FLOAT64_PATH = 10**5  # roundings per path that FLOAT64_REL covers ten times over
_UNIT_ROUNDOFF = {"float64": 2.0**-53, "float32": 2.0**-24}


@dataclass(frozen=True)
class Slack:
    """``slack(M) = rel * |M| + abs``; works on floats, numpy arrays and torch tensors."""

    rel: float = FLOAT64_REL
    abs: float = ABS

    def __post_init__(self) -> None:
        if not (0.0 <= self.rel < 1.0 and self.abs >= 0.0):
            raise ValueError(f"slack needs 0 <= rel < 1 and abs >= 0, got {self.rel}, {self.abs}")

    def __call__(self, magnitude: T) -> T:
        return self.rel * abs(magnitude) + self.abs  # type: ignore[operator, return-value]

    def lower(self, value: T, magnitude: T) -> T:
        """``value`` moved down by the slack of ``magnitude`` (a sound lower bound)."""
        return value - self(magnitude)  # type: ignore[operator, no-any-return]

    def upper(self, value: T, magnitude: T) -> T:
        """``value`` moved up by the slack of ``magnitude`` (a sound upper bound)."""
        return value + self(magnitude)  # type: ignore[operator, no-any-return]

    @staticmethod
    def for_dtype(dtype: object, roundings: int) -> Slack:
        """The slack of a computation in ``dtype`` (numpy or torch float type, or its
        name) with at most ``roundings`` roundings on any path."""
        if isinstance(dtype, type) and issubclass(dtype, np.generic):
            dtype = np.dtype(dtype)
        name = str(dtype).replace("torch.", "")
        if name not in _UNIT_ROUNDOFF:
            raise ValueError(f"no sound slack rule for dtype {name} (float64 or float32 only)")
        u = _UNIT_ROUNDOFF[name]
        n = max(1, int(roundings))
        if n * u >= 0.5:
            raise ValueError(f"{n} roundings in {name}: no meaningful slack")
        gamma = n * u / (1.0 - n * u)
        if name == "float64":
            return FLOAT64 if n <= FLOAT64_PATH else Slack(max(FLOAT64_REL, 10.0 * gamma), ABS)
        return Slack(2.0 * gamma, ABS)


FLOAT64 = Slack()
"""The float64 rule every engine uses unless told otherwise."""


def fp_slack(magnitude: np.ndarray | float) -> np.ndarray | float:
    """The float64 slack of ``magnitude`` (numpy or float)."""
    return FLOAT64(magnitude)


REPRODUCIBLE_BITS = 40


def reproducible_lower(x: float) -> float:
    """``x`` rounded down to ``REPRODUCIBLE_BITS`` significant bits (a relative step of
    2^-40, about 9e-13): a lower bound stays a lower bound, and noise in its last digits
    (HiGHS's MILP dual bound differed by 3e-15 between identical runs of one sample, one
    under load) stays out of the records that identical runs must share."""
    if not math.isfinite(x) or x == 0.0:
        return x
    m, e = math.frexp(x)
    step = 2.0**REPRODUCIBLE_BITS
    return math.ldexp(math.floor(m * step) / step, e)
