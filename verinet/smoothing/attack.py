"""PGD on the smoothed classifier (Salman et al., NeurIPS 2019, "SmoothAdv").

The hard smoothed classifier ``g`` has no useful gradient, so the attack climbs the
cross-entropy of the *soft* smoothed classifier ``G(x) = E_d[softmax(f(x + d))]``,
``d ~ N(0, sigma^2 I)``: ``L(x') = -log G(x')_y``.  Each step estimates it with ``m``
fresh noise draws (a Monte Carlo gradient of ``-log((1/m) sum_j softmax(f(x' + d_j))_y)``;
Salman et al.'s ``SmoothAdv_PGD``), moves by ``step_size`` along the L2-normalised
gradient and projects onto the L2 ball of ``eps`` around ``x`` (raw input space), and
onto ``domain`` when one is given (default: none, the ball in R^n that Theorem 1 covers).

The final point is judged by the smoothed classifier itself: ``PREDICT`` with the
classifier's options (``n`` draws, ``alpha``).  A success is a point where ``PREDICT``
returns a class other than the label -- probabilistic, like every smoothing result: the
returned class is ``g``'s with probability at least 1 - alpha.  An abstention is not a
success.  Inside a radius certified by ``CERTIFY`` no success should ever be found.

Noise draws come from the per-sample streams of :mod:`verinet.smoothing.noise` (phase
ATTACK), so results are reproducible and independent of which samples run together.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from verinet.smoothing.classifier import SmoothedClassifier
from verinet.smoothing.noise import DTYPES, Phase, noise_rng
from verinet.smoothing.result import Prediction
from verinet.types import InputError


@dataclass(frozen=True)
class SmoothedAttackResult:
    """``x`` (N, n): the attack's points; ``distance`` (N,): their L2 distances to the
    originals (<= ``eps``); ``predictions``: ``PREDICT`` at each point; ``success`` (N,):
    ``PREDICT`` returned a class other than the label."""

    x: np.ndarray
    distance: np.ndarray
    predictions: tuple[Prediction, ...]
    success: np.ndarray
    eps: float
    seconds: float


@dataclass(frozen=True, kw_only=True)
class SmoothedPGD:
    """L2 PGD of ``steps`` steps of ``step_size`` (default ``2.5 eps / steps``) on the
    soft smoothed classifier, ``m`` noise draws per step (see the module doc)."""

    eps: float
    steps: int = 20
    step_size: float | None = None
    m: int = 64
    domain: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.eps) and self.eps >= 0):
            raise InputError(f"eps must be a finite number >= 0, got {self.eps}")
        if self.steps < 1 or self.m < 1:
            raise InputError(f"steps and m must be >= 1, got {self.steps} and {self.m}")
        if self.step_size is not None and not (math.isfinite(self.step_size)
                                               and self.step_size > 0):
            raise InputError(f"step_size must be > 0, got {self.step_size}")

    @property
    def alpha(self) -> float:
        return self.step_size if self.step_size is not None else 2.5 * self.eps / self.steps

    def __call__(self, g: SmoothedClassifier, x: np.ndarray, labels: Sequence[int] | np.ndarray,
                 *, indices: Sequence[int] | np.ndarray | None = None) -> SmoothedAttackResult:
        """Attack rows of ``x`` (N, n) with ``labels`` (N,); ``indices`` (default 0..N-1)
        seed each sample's noise and its final ``PREDICT``."""
        start = time.perf_counter()
        x0 = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        lab = np.asarray(labels, dtype=np.int64).reshape(-1)
        idx = np.arange(len(x0)) if indices is None else np.asarray(indices, dtype=np.int64)
        if len(lab) != len(x0) or len(idx) != len(x0):
            raise InputError(f"{len(x0)} inputs, {len(lab)} labels, {len(idx)} indices")
        xa = self._search(g, x0, lab, idx) if self.eps > 0 else x0.copy()
        preds = tuple(g.predict(xa[i], index=int(idx[i]), label=int(lab[i]))
                      for i in range(len(x0)))
        success = np.array([p.prediction is not None and p.prediction != p.label
                            for p in preds], dtype=bool)
        return SmoothedAttackResult(xa, np.linalg.norm(xa - x0, axis=1), preds, success,
                                    self.eps, time.perf_counter() - start)

    def _search(self, g: SmoothedClassifier, x0: np.ndarray, lab: np.ndarray,
                idx: np.ndarray) -> np.ndarray:
        o = g.options
        dt = DTYPES[o.dtype]
        module = g.base.module
        rngs = [noise_rng(o.seed, int(i), Phase.ATTACK) for i in idx]
        n, d = x0.shape
        xt0 = torch.tensor(x0, dtype=dt)
        xa = xt0.clone()
        lab_t = torch.as_tensor(lab).repeat_interleave(self.m)
        for _ in range(self.steps):
            noise = np.stack([r.standard_normal((self.m, d)) for r in rngs]) * o.sigma
            xa.requires_grad_(True)
            noisy = (xa[:, None, :] + torch.as_tensor(noise, dtype=dt)).reshape(n * self.m, d)
            if o.clip is not None:
                noisy = noisy.clamp(*o.clip)
            prob = torch.softmax(module(noisy), dim=1).gather(1, lab_t[:, None])
            soft = prob.reshape(n, self.m).mean(dim=1)
            loss = -torch.log(soft.clamp_min(1e-30)).sum()
            (grad,) = torch.autograd.grad(loss, xa)
            with torch.no_grad():
                norm = grad.norm(dim=1, keepdim=True).clamp_min(1e-12)
                xa = xa + self.alpha * grad / norm
                delta = xa - xt0
                dn = delta.norm(dim=1, keepdim=True)
                xa = xt0 + delta * torch.clamp(self.eps / dn.clamp_min(1e-30), max=1.0)
                if self.domain is not None:
                    xa = xa.clamp(*self.domain)
        out = xa.detach().to(torch.float64).numpy()
        # float rounding can leave the point a hair outside the ball: scale it back in
        dist = np.linalg.norm(out - x0, axis=1, keepdims=True)
        over = dist > self.eps
        scale = self.eps * (1 - 1e-12) / np.maximum(dist, 1e-300)
        out = np.where(over, x0 + (out - x0) * scale, out)
        return out
