"""The sampled region, its i.i.d. uniform samples, the learning features and the batched
forward passes of DeepPAC.

* :class:`Ball`: ``B(x0, r) = {x : ||x - x0||_inf <= r}`` clipped to the input domain,
  as per-coordinate bounds in raw input space.
* :func:`draw_phases`: the K1, K2 and K3 samples of one verdict, uniform in the ball,
  drawn in that order from ``numpy.random.RandomState(seed)`` with one
  ``uniform(lower, upper)`` draw per point -- bit-for-bit the stream of the DeepPAC
  artifact (``np.random.seed(0)`` before every verdict).
* :class:`FeatureMap`: the PAC model is affine in ``a(x) = [(x - mean) / std ; 1]`` (the
  artifact learns on normalised inputs; ``mean = 0, std = 1`` learns on raw inputs).
  The choice changes the fits of Phases 1 and 2 (the coefficient box and the ranking of
  the constant), not what Phase 3 guarantees.
* :class:`ScoreDifferences`: ``Delta_j(x) = f_j(x) - f_label(x)`` for every ``j != label``
  from batched forward passes of the IR's torch lowering (float32 by default).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from verinet.ir.graph import Network
from verinet.ir.torch import torch_network
from verinet.pac.scenario import ScenarioCounts
from verinet.types import InputError, frozen_array, linf_ball_bounds


@dataclass(frozen=True)
class Ball:
    """The clipped L-inf ball around ``x0`` (flat raw input) of radius ``radius``."""

    x0: np.ndarray
    radius: float
    lower: np.ndarray
    upper: np.ndarray

    @staticmethod
    def around(x0: np.ndarray, radius: float, domain: tuple[float, float] = (0.0, 1.0)) -> Ball:
        if not (np.isfinite(radius) and radius >= 0):
            raise InputError(f"radius must be a finite number >= 0, got {radius}")
        x = np.asarray(x0, dtype=np.float64).reshape(-1)
        lower, upper = linf_ball_bounds(x, radius, *domain)
        return Ball(frozen_array(x), float(radius), frozen_array(lower), frozen_array(upper))

    @property
    def dim(self) -> int:
        return int(self.x0.size)


def draw_phases(ball: Ball, counts: ScenarioCounts, seed: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (K1, n), (K2, n) and (K3, n) float64 samples of one verdict (see module doc).

    Every call starts the stream afresh from ``seed``: the K3 samples are drawn after,
    and independently of, the K1 and K2 samples the model is learned from."""
    rs = np.random.RandomState(seed)
    lo, hi = ball.lower, ball.upper
    return tuple(rs.uniform(lo, hi, size=(k, ball.dim))  # type: ignore[return-value]
                 for k in (counts.k1, counts.k2, counts.k3))


@dataclass(frozen=True)
class FeatureMap:
    """``a(x) = [(x - mean) / std ; 1]`` with flat per-input ``mean`` and ``std``."""

    mean: np.ndarray
    std: np.ndarray

    def __post_init__(self) -> None:
        m, s = frozen_array(self.mean).reshape(-1), frozen_array(self.std).reshape(-1)
        if m.shape != s.shape or not np.isfinite(m).all() or not (s > 0).all():
            raise InputError("PAC features need finite mean and positive std of equal size")
        object.__setattr__(self, "mean", m)
        object.__setattr__(self, "std", s)

    @staticmethod
    def identity(n: int) -> FeatureMap:
        return FeatureMap(np.zeros(n), np.ones(n))

    @staticmethod
    def normalisation(mean: object, std: object, input_shape: tuple[int, ...]) -> FeatureMap:
        """Broadcast ``mean``/``std`` (scalars, or one value per channel = axis 1 of
        ``input_shape``) to the flat input, as :meth:`Network.with_normalization` does."""
        shape = tuple(input_shape[1:])
        out = []
        for v, default in ((mean, 0.0), (std, 1.0)):
            a = np.asarray(default if v is None else v, dtype=np.float64)
            if a.ndim == 1 and a.size > 1 and len(shape) >= 2 and shape[0] == a.size:
                a = a.reshape((a.size,) + (1,) * (len(shape) - 1))
            try:
                out.append(np.broadcast_to(a, shape).reshape(-1))
            except ValueError:
                raise InputError(f"mean/std do not broadcast to the input shape {shape}") from None
        return FeatureMap(out[0], out[1])

    @property
    def dim(self) -> int:
        return int(self.mean.size)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Features (K, n + 1) of samples ``x`` (K, n), in float64."""
        a = (np.asarray(x, dtype=np.float64) - self.mean) / self.std
        return np.hstack([a, np.ones((a.shape[0], 1))])

    def bounds(self, ball: Ball) -> tuple[np.ndarray, np.ndarray]:
        """The ball's bounds in feature space (without the constant)."""
        return (ball.lower - self.mean) / self.std, (ball.upper - self.mean) / self.std


@dataclass(frozen=True)
class ScoreDifferences:
    """Batched ``Delta_j(x) = f_j(x) - f_label(x)`` for ``j`` in ``classes`` (all but
    ``label``), from the torch lowering of ``network`` in ``dtype``."""

    network: Network
    label: int
    dtype: str = "float32"
    batch: int = 4096

    @property
    def classes(self) -> np.ndarray:
        return np.delete(np.arange(self.network.n_outputs), self.label)

    def rounded(self, x: np.ndarray) -> np.ndarray:
        """``x`` as the forward pass sees it (rounded to float32 when it runs in float32)."""
        x = np.asarray(x, dtype=np.float64)
        return x.astype(np.float32).astype(np.float64) if self.dtype == "float32" else x

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(K, m - 1) float64 score differences of samples ``x`` (K, n)."""
        tdt = torch.float32 if self.dtype == "float32" else torch.float64
        mod = torch_network(self.network, tdt)
        out = []
        with torch.no_grad():
            for s in range(0, x.shape[0], self.batch):
                out.append(mod(torch.as_tensor(np.ascontiguousarray(x[s:s + self.batch]),
                                               dtype=tdt)).double().numpy())
        y = np.concatenate(out) if out else np.zeros((0, self.network.n_outputs))
        return y[:, self.classes] - y[:, [self.label]]
