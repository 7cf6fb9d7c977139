"""Randomized smoothing (Cohen, Rosenfeld and Kolter, "Certified Adversarial Robustness
via Randomized Smoothing", ICML 2019).

From any base classifier ``f`` (a verinet IR network, by the argmax of its logits) the
smoothed classifier is ``g(x) = argmax_c P(f(x + d) = c)``, ``d ~ N(0, sigma^2 I)`` in
the raw input space.  If the top class has probability at least ``pA > 1/2`` then ``g``
is constant on the L2 ball of radius ``sigma * Phi^-1(pA)`` around ``x`` (Theorem 1).
The probabilities are estimated by Monte Carlo, so every result is **probabilistic**:
it holds with probability at least ``1 - alpha`` over the noise draws, and it is about
``g``, **not the base network** -- it never enters ``verinet certify``'s sound
sandwiches.

* :mod:`~verinet.smoothing.stats`: Clopper-Pearson bounds, the binomial test, the radius.
* :mod:`~verinet.smoothing.noise`: seeded, batched noise draws and class counts
  (no clipping to the input domain unless asked: the paper does not clip).
* :mod:`~verinet.smoothing.options`: :class:`SmoothingOptions` (sigma, n0, n, alpha,
  batch, seed, clip, dtype).
* :mod:`~verinet.smoothing.classifier`: :class:`SmoothedClassifier` with ``PREDICT`` and
  ``CERTIFY``; :func:`run_smoothing` over a data set.
* :mod:`~verinet.smoothing.result`: :class:`Certificate`, :class:`Prediction`,
  :class:`SmoothingReport`, the certified-accuracy curve.
* :mod:`~verinet.smoothing.attack`: :class:`SmoothedPGD`, Salman et al.'s PGD on the
  soft smoothed classifier in an L2 ball.

Gaussian-noise training (the paper's augmentation) is
:class:`verinet.train.objectives.GaussianNoise`; the reports are written by
:mod:`verinet.report.smoothing`; the command is ``verinet smooth``.
"""

from verinet.smoothing.attack import SmoothedAttackResult, SmoothedPGD
from verinet.smoothing.classifier import SmoothedClassifier, run_smoothing
from verinet.smoothing.noise import BaseClassifier, Phase, class_counts, noise_rng
from verinet.smoothing.options import SmoothingOptions
from verinet.smoothing.result import (
    Certificate,
    Prediction,
    SmoothingGuarantee,
    SmoothingReport,
    certified_accuracy,
    radius_grid,
)
from verinet.smoothing.stats import (
    binomial_pvalue,
    certified_radius,
    clopper_pearson_interval,
    clopper_pearson_lower,
)

__all__ = [
    "BaseClassifier", "Certificate", "Phase", "Prediction", "SmoothedAttackResult",
    "SmoothedClassifier", "SmoothedPGD", "SmoothingGuarantee", "SmoothingOptions",
    "SmoothingReport", "binomial_pvalue", "certified_accuracy", "certified_radius",
    "class_counts", "clopper_pearson_interval", "clopper_pearson_lower", "noise_rng",
    "radius_grid", "run_smoothing",
]
