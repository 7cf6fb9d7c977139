"""Interval bound propagation (IBP) on a chain, and the bounds container.

Floating-point tolerance: bounds are computed in float64 and then widened outward by
``fp_slack`` (relative 1e-10 of the magnitudes involved plus 1e-12 absolute), which
dominates the rounding error of any float64 dot product of up to 10^5 terms.  The
bounds therefore hold for the exact real-valued network.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from verinet.bounds.fp import FLOAT64
from verinet.bounds.fp import fp_slack as fp_slack  # re-exported: the float64 rule
from verinet.ir.chain import Activation, Affine, Chain
from verinet.types import Box, SoundnessError, frozen_array


@dataclass(frozen=True)
class LayerBounds:
    """Sound bounds on the output of every affine layer of a chain (pre-activations;
    the last entry bounds the network outputs).  ``method`` names how they were made."""

    lower: tuple[np.ndarray, ...]
    upper: tuple[np.ndarray, ...]
    method: str = "interval"

    def __post_init__(self) -> None:
        lo = tuple(frozen_array(v).reshape(-1) for v in self.lower)
        hi = tuple(frozen_array(v).reshape(-1) for v in self.upper)
        if len(lo) != len(hi):
            raise ValueError("lower and upper must have one entry per affine layer")
        for k, (a, b) in enumerate(zip(lo, hi, strict=True)):
            if a.shape != b.shape:
                raise ValueError(f"layer {k}: bound shapes differ")
            if np.any(a > b):
                i = int(np.argmax(a > b))
                raise SoundnessError(f"layer {k} unit {i}: lower {a[i]} > upper {b[i]}")
        object.__setattr__(self, "lower", lo)
        object.__setattr__(self, "upper", hi)

    @property
    def output_lower(self) -> np.ndarray:
        return self.lower[-1]

    @property
    def output_upper(self) -> np.ndarray:
        return self.upper[-1]

    def tighten(self, other: LayerBounds) -> LayerBounds:
        """Elementwise intersection of two sound bound sets."""
        lo = tuple(np.maximum(a, b) for a, b in zip(self.lower, other.lower, strict=True))
        hi = tuple(np.minimum(a, b) for a, b in zip(self.upper, other.upper, strict=True))
        # Two sound enclosures of a non-empty set cannot be disjoint beyond rounding.
        hi = tuple(np.maximum(h, low) for low, h in zip(lo, hi, strict=True))
        return LayerBounds(lo, hi, f"{self.method}+{other.method}")

    def unstable(self, k: int) -> np.ndarray:
        """Mask of units in affine layer ``k`` whose ReLU is undecided (l < 0 < u)."""
        return (self.lower[k] < 0) & (self.upper[k] > 0)


def affine_interval(
    layer: Affine, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Sound bounds of ``W x + b`` for ``lo <= x <= hi`` (batched over leading axes)."""
    mid = (lo + hi) / 2.0
    rad = (hi - lo) / 2.0
    c = mid @ layer.weight.T + layer.bias
    r = rad @ np.abs(layer.weight).T
    mag = np.maximum(np.abs(lo), np.abs(hi)) @ np.abs(layer.weight).T + np.abs(layer.bias)
    s = FLOAT64(mag)
    return c - r - s, c + r + s


def activation_interval(
    act: Activation, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Monotone activations map intervals endpoint-wise."""
    return act.apply(lo), act.apply(hi)


def interval_bounds(chain: Chain, box: Box) -> LayerBounds:
    """IBP through the whole chain."""
    lo, hi = box.lower, box.upper
    lows, highs = [], []
    for layer in chain.layers:
        if isinstance(layer, Affine):
            lo, hi = affine_interval(layer, lo, hi)
            lows.append(lo)
            highs.append(hi)
        else:
            lo, hi = activation_interval(layer, lo, hi)
    return LayerBounds(tuple(lows), tuple(highs), "interval")
