"""The options of a smoothing run (``verinet smooth``), checked on construction."""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

from verinet.smoothing.noise import DTYPES
from verinet.smoothing.stats import check_alpha
from verinet.types import InputError


def _integer(v: object) -> int | None:
    """``v`` as an int (Python or numpy integers; not bools or floats), else None."""
    if isinstance(v, bool):
        return None
    try:
        return operator.index(v)  # type: ignore[arg-type]  # anything else is refused
    except TypeError:
        return None


@dataclass(frozen=True, kw_only=True)
class SmoothingOptions:
    """``sigma``: the noise std (raw input units); ``n0``: CERTIFY's selection draws;
    ``n``: the estimation draws (CERTIFY) or all draws (PREDICT); ``alpha``: one minus
    the confidence; ``batch``: draws evaluated at once (never changes a result);
    ``seed``: with each sample's index, seeds its draws; ``clip``: clip noisy samples to
    ``(lo, hi)`` (default None: no clipping, as in the paper); ``dtype``: the base
    network's evaluation precision.  Every bad value is a one-line :class:`InputError`."""

    sigma: float
    n0: int = 100
    n: int = 10_000
    alpha: float = 0.001
    batch: int = 1000
    seed: int = 0
    clip: tuple[float, float] | None = None
    dtype: str = "float32"

    def __post_init__(self) -> None:
        try:
            sigma = float(self.sigma)
        except (TypeError, ValueError):
            raise InputError(f"sigma must be a number, got {self.sigma!r}") from None
        if not (math.isfinite(sigma) and sigma > 0):
            raise InputError(f"sigma must be a positive finite number, got {self.sigma}")
        object.__setattr__(self, "sigma", sigma)
        object.__setattr__(self, "alpha", check_alpha(self.alpha))
        for name, least in (("n0", 1), ("n", 1), ("batch", 1), ("seed", 0)):
            v = _integer(getattr(self, name))
            if v is None or v < least:
                raise InputError(f"{name} must be an integer >= {least}, got "
                                 f"{getattr(self, name)}")
            object.__setattr__(self, name, v)
        if self.n < self.n0:
            raise InputError(f"n ({self.n}) must be at least n0 ({self.n0})")
        if self.clip is not None:
            lo, hi = (float(v) for v in self.clip)
            if not lo < hi:
                raise InputError(f"clip needs lo < hi, got {self.clip}")
            object.__setattr__(self, "clip", (lo, hi))
        if self.dtype not in DTYPES:
            raise InputError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
