"""Learning the PAC model: DeepPAC's three phases on precomputed features and scores.

For every class ``j != label`` an affine model ``g_j(x) = c_j . a(x)`` of the score
difference ``Delta_j = f_j - f_label`` is learned (``a`` from
:class:`~verinet.pac.sampling.FeatureMap`):

1. **coarse fit** on the K1 samples.  The artifact solves the Chebyshev LP
   ``min lambda s.t. |A c - d| <= lambda, -b <= c <= b`` (``phase1="lp"``: 786 variables
   and 4000 rows per class on MNIST; HiGHS takes 0.5 to 1 minute per class here, the
   dense interior point of :mod:`verinet.pac.chebyshev` about a second).  The
   default ``phase1="lawson"`` approximates it by least squares followed by
   ``lawson_steps`` steps of Lawson's algorithm (iteratively re-weighted least squares
   converging to the Chebyshev fit; weights ``|residual|``): on DeepPAC's FNN1, image 0,
   one step gives ``lambda* = 0.0310 / 0.0475`` at radius 4 / 5 against the LP's
   ``0.0312 / 0.0471``, plain least squares ``0.0320 / 0.0521``.  ``phase1="lstsq"``
   stops after least squares.  Fits are clipped to the box ``[-b, b]``.
2. **focused re-fit** on the K2 samples: the ``kappa`` coefficients of largest magnitude
   (the constant included in the ranking) are re-learned by the Chebyshev LP with the
   others frozen (``kappa + 1`` variables, ``2 K2`` rows), solved exactly by constraint
   generation (:func:`~verinet.pac.chebyshev.chebyshev_fit`).
3. **scenario margin** on the K3 samples: ``lambda* = max_j max_k |g_j(x_k) - Delta_j(x_k)|``.

Only Phase 3 carries the guarantee (see :mod:`verinet.pac`): Phases 1 and 2 may use any
fitting method, and their LP optima are trusted from HiGHS only as far as they shape the
model; ``lambda*`` is computed here exactly (float64) from the K3 residuals.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from verinet.pac.chebyshev import chebyshev_fit, chebyshev_ipm
from verinet.types import SoundnessError, frozen_array

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PacModel:
    """Affine score-difference models and their margin.

    ``coef`` (m - 1, n + 1): row ``i`` models ``Delta_{classes[i]}`` on features
    ``[(x - mean)/std ; 1]``; ``margin``: ``lambda*`` of Phase 3; ``fit_margins``
    (m - 1,): each class's Phase 2 optimum (in-sample, informative only).
    """

    classes: np.ndarray
    coef: np.ndarray
    margin: float
    fit_margins: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", frozen_array(self.classes, dtype=np.int64))
        object.__setattr__(self, "coef", frozen_array(self.coef))
        object.__setattr__(self, "fit_margins", frozen_array(self.fit_margins))
        if not np.isfinite(self.coef).all() or not np.isfinite(self.margin):
            raise SoundnessError("the learned PAC model is not finite")

    def predict(self, features: np.ndarray) -> np.ndarray:
        """``g_j`` (K, m - 1) at features (K, n + 1)."""
        return np.asarray(features, dtype=np.float64) @ self.coef.T

    def upper(self, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
        """``U_j = max over the feature box of g_j, plus lambda*`` (m - 1,)."""
        w = self.coef[:, :-1]
        top = np.maximum(w * lower, w * upper).sum(axis=1) + self.coef[:, -1]
        return top + self.margin

    def vertices(self, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
        """The box vertex maximising each ``g_j`` (m - 1, n): ``upper`` where the
        coefficient is positive, else ``lower`` (given in any space the box lives in)."""
        return np.where(self.coef[:, :-1] > 0, upper, lower)


def learn(phases: tuple[tuple[np.ndarray, np.ndarray], ...], classes: np.ndarray, kappa: int,
          phase1: str = "lawson", bound: float = 100.0, lawson_steps: int = 1) -> PacModel:
    """Run the three phases on ``((A1, D1), (A2, D2), (A3, D3))``: features (K, n + 1) and
    score differences (K, m - 1) of each phase's samples."""
    (a1, d1), (a2, d2), (a3, d3) = phases
    coef = coarse_fit(a1, d1, phase1, bound, lawson_steps)
    coef, fit = focused_refit(a2, d2, coef, kappa, bound)
    at_bound = np.abs(coef) >= bound * (1 - 1e-9)
    if at_bound.any():
        # The box is the artifact's; it is not scale-free: a network whose scores spread
        # over thousands (a distilled student deployed at T = 1) gets a clipped model, a
        # wide margin and a PAC radius far below its certified one.
        log.warning("%d PAC model coefficient(s) at the box [-%g, %g] (scores spread %.3g): "
                    "the fit is clipped and the PAC radius can be far too small; raise the "
                    "coefficient bound", int(at_bound.sum()), bound, bound,
                    float(np.ptp(d1)) if d1.size else 0.0)
    return PacModel(classes, coef, scenario_margin(a3, d3, coef), fit)


def coarse_fit(a: np.ndarray, d: np.ndarray, method: str, bound: float, steps: int = 1
               ) -> np.ndarray:
    """Phase 1: coefficients (m - 1, n + 1) from features ``a`` (constant last) and
    targets ``d`` (K, m - 1); see the module doc for the methods."""
    z, mean, scale = _standardise(a)
    zt = torch.as_tensor(z, dtype=torch.float64)
    dt = torch.as_tensor(d, dtype=torch.float64)
    coef = torch.linalg.lstsq(zt, dt, driver="gelsd").solution.T  # (m - 1, n + 1)
    if method == "lp":
        return np.stack([_lp_fit(a, zt, dt[:, j], coef[j], mean, scale, bound)
                         for j in range(d.shape[1])])
    if method == "lawson":
        coef = torch.stack([_lawson(zt, dt[:, j], coef[j], steps) for j in range(d.shape[1])])
    return np.clip(_unstandardise(coef.numpy(), mean, scale), -bound, bound)


def _lp_fit(a: np.ndarray, z: torch.Tensor, d: torch.Tensor, start: torch.Tensor,
            mean: np.ndarray, scale: np.ndarray, bound: float) -> np.ndarray:
    """The Chebyshev LP of one class: the interior point method on the standardised
    features (from the least-squares ``start``), HiGHS when it fails or leaves the box."""
    c = chebyshev_ipm(z, d, start)
    if c is not None:
        coef = _unstandardise(c.numpy()[None, :], mean, scale)[0]
        if np.all(np.abs(coef) <= bound):
            return coef
        log.info("Phase 1 LP leaves the coefficient box: solving it with HiGHS")
    else:
        log.info("Phase 1 interior point did not converge: solving the LP with HiGHS")
    return chebyshev_fit(a, d.numpy(), bound, generate=False)[0]


def _standardise(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features centred and scaled per column (the constant column kept): near the sample
    the raw features are almost constant, so the plain normal equations are ill-posed."""
    x = a[:, :-1]
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    return np.hstack([(x - mean) / scale, a[:, -1:]]), mean, scale


def _unstandardise(coef: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    out = np.array(coef, dtype=np.float64)
    out[:, :-1] = coef[:, :-1] / scale
    out[:, -1] = coef[:, -1] - out[:, :-1] @ mean
    return out


def _lawson(z: torch.Tensor, d: torch.Tensor, c: torch.Tensor, steps: int) -> torch.Tensor:
    """``steps`` iterations of Lawson's algorithm for the Chebyshev fit, from the
    least-squares ``c``: weights ``w_k <- w_k |r_k|`` (normalised), then weighted least
    squares (Cholesky of the weighted Gram matrix, least squares if it is singular)."""
    w = torch.full((z.shape[0],), 1.0 / z.shape[0], dtype=torch.float64)
    for _ in range(steps):
        w = w * (z @ c - d).abs()
        total = float(w.sum())
        if total <= 0:  # an exact fit: nothing to re-weight
            return c
        w = w / total
        g = (z * w[:, None]).T @ z
        g.diagonal().add_(1e-12 * float(g.diagonal().mean()))
        chol, info = torch.linalg.cholesky_ex(g)
        if int(info) == 0:
            c = torch.cholesky_solve((z.T @ (w * d))[:, None], chol)[:, 0]
        else:
            sw = w.sqrt()
            c = torch.linalg.lstsq(z * sw[:, None], (d * sw)[:, None],
                                   driver="gelsd").solution[:, 0]
    return c


def focused_refit(a: np.ndarray, d: np.ndarray, coef: np.ndarray, kappa: int, bound: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Phase 2: re-learn the ``kappa`` largest coefficients of every row of ``coef`` on
    ``(a, d)`` with the rest frozen; returns the new coefficients and the LP optima."""
    out = np.array(coef, dtype=np.float64)
    fit = np.zeros(coef.shape[0])
    for j in range(coef.shape[0]):
        c = out[j]
        if kappa <= 0:
            fit[j] = float(np.max(np.abs(a @ c - d[:, j]))) if d.shape[0] else 0.0
            continue
        free = np.sort(np.argsort(np.abs(c))[-kappa:])
        fixed = c.copy()
        fixed[free] = 0.0
        c_free, fit[j] = chebyshev_fit(a[:, free], d[:, j] - a @ fixed, bound)
        c[free] = c_free
    return out, fit


def scenario_margin(a: np.ndarray, d: np.ndarray, coef: np.ndarray) -> float:
    """Phase 3: ``max_j max_k |g_j(x_k) - Delta_j(x_k)|`` (0 for no samples)."""
    if a.shape[0] == 0:
        return 0.0
    return float(np.max(np.abs(a @ coef.T - d)))
