"""Linear classifiers whose smoothed class probabilities are known in closed form.

Binary: logits ``(0, w.x + b)``; under ``N(0, sigma^2 I)``, ``w.(x + d) + b`` is normal
with mean ``w.x + b`` and std ``sigma ||w||``, so ``P(class 1) = Phi((w.x + b) / (sigma
||w||))`` and the radius of Theorem 1 with the *exact* ``pA``, ``sigma Phi^-1(pA)``, is
``|w.x + b| / ||w||``: the L2 distance to the decision boundary (the smoothed classifier
of a linear one is itself, and the certificate is tight).

Monte Carlo: CERTIFY's ``pA_lower`` sits about ``z_alpha sd`` below the estimate, with
``sd = sqrt(p (1 - p) / n)``; since ``dR = sigma dp / phi(Phi^-1(p))``, the relative
radius error is ``~ (z_alpha + noise) sd / (phi(z) z)`` with ``z = R / sigma``.  It is
smallest near ``z = 1.5`` (``p(1-p) / (phi(z) z)^2 ~ 1.65``); at ``alpha = 0.001``
(``z_alpha = 3.09``) and four standard deviations in all, 1e-3 relative needs
``n >= (4e3)^2 * 1.65 ~ 2.6e7`` draws (expected error at ``n = 6e7``: ``5e-4 +- 1.7e-4``);
a 2-D model evaluates them in about 3 s.  The other tests use ``n = 1e5`` with the bound
that ``n`` implies.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from tests.smoothing.models import bands, bands_probs, binary, binary_p1
from verinet.smoothing import (
    Phase,
    SmoothedClassifier,
    SmoothingOptions,
    certified_radius,
    clopper_pearson_interval,
)

W = np.array([0.6, -0.8, 0.5])
B = 0.1


def _distance(x: np.ndarray) -> float:
    return abs(float(W @ x) + B) / float(np.linalg.norm(W))


@pytest.mark.parametrize("sigma", [0.1, 0.25, 0.5, 1.0])
@pytest.mark.parametrize("shift", [0.05, 0.2, 0.4])
def test_exact_pa_gives_the_distance_to_the_boundary(sigma: float, shift: float) -> None:
    x = np.array([0.2, 0.1, 0.0]) + shift * W / np.linalg.norm(W)
    p1 = binary_p1(W, B, x, sigma)
    pa = max(p1, 1 - p1)
    assert certified_radius(sigma, pa) == pytest.approx(_distance(x), rel=1e-3)
    assert certified_radius(sigma, pa) == pytest.approx(_distance(x), rel=1e-9)


def test_multiclass_bands_exact_radius() -> None:
    """An outer band far from the third class: ``pA`` is closed form, and its radius is
    the distance to the one boundary that matters; a middle band's radius (pB = 1 - pA)
    is below its distance to the nearer boundary (Theorem 1 is not tight there)."""
    w, th, sigma = np.array([1.0, 2.0]), np.array([0.0, 6.0]), 0.3
    net = bands(w, th)
    x = np.array([-0.1, -0.1])                      # s = -0.3: class 0
    assert int(np.argmax(net.evaluate(x[None]))) == 0
    p = bands_probs(w, th, x, sigma)
    assert p[2] < 1e-12 and p.sum() == pytest.approx(1.0)
    dist = (th[0] - w @ x) / np.linalg.norm(w)
    assert certified_radius(sigma, p[0]) == pytest.approx(dist, rel=1e-3)
    mid = np.array([0.6, 0.3])                      # s = 1.2: class 1, nearer edge 0
    pm = bands_probs(w, th, mid, sigma)
    assert int(np.argmax(pm)) == 1
    assert certified_radius(sigma, pm[1]) <= (w @ mid - th[0]) / np.linalg.norm(w)


def _mc_bound(p: float, n: int, sigma: float, alpha: float, extra_sd: float) -> float:
    """The relative radius error ``n`` draws allow (see the module doc)."""
    z = norm.ppf(p)
    sd = math.sqrt(p * (1 - p) / n)
    return (norm.ppf(1 - alpha) + extra_sd) * sd / (norm.pdf(z) * z)


def test_monte_carlo_counts_within_their_confidence_interval() -> None:
    """The counts of each class agree with the closed form (two-sided Clopper-Pearson
    at 1e-6), for the binary and the 3-band classifier."""
    w, th, sigma, n = np.array([1.0, 2.0]), np.array([0.0, 1.0]), 0.3, 100_000
    x = np.array([0.1, 0.15])
    g = SmoothedClassifier(bands(w, th), SmoothingOptions(sigma=sigma, n0=10, n=n,
                                                          batch=20_000))
    counts = g.counts(x, n, index=0, phase=Phase.ESTIMATION)
    for k, p in zip(counts, bands_probs(w, th, x, sigma), strict=True):
        lo, hi = clopper_pearson_interval(int(k), n, 1e-6)
        assert lo <= p <= hi
    xb = np.array([0.3, 0.0, 0.1])
    gb = SmoothedClassifier(binary(W, B), SmoothingOptions(sigma=0.5, n0=10, n=n,
                                                           batch=20_000))
    k1 = int(gb.counts(xb, n, index=3, phase=Phase.ESTIMATION)[1])
    lo, hi = clopper_pearson_interval(k1, n, 1e-6)
    assert lo <= binary_p1(W, B, xb, 0.5) <= hi


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_certify_radius_below_and_close_to_the_closed_form(seed: int) -> None:
    sigma, n, alpha = 0.25, 100_000, 0.001
    x = np.array([0.1, -0.2, 0.3]) + 0.1 * W  # class 1 side, z ~ 1.6
    p = binary_p1(W, B, x, sigma)
    g = SmoothedClassifier(binary(W, B), SmoothingOptions(sigma=sigma, n0=100, n=n,
                                                          alpha=alpha, seed=seed,
                                                          batch=50_000))
    c = g.certify(x, index=0, label=1)
    true = _distance(x)
    assert c.prediction == 1 and c.radius is not None
    assert c.p_lower <= p and c.radius <= true
    assert (true - c.radius) / true <= _mc_bound(p, n, sigma, alpha, extra_sd=4.0)


def test_certify_radius_to_1e_3_relative_with_6e7_draws() -> None:
    """CERTIFY's Monte Carlo radius itself within 1e-3 of the closed form (~3 s)."""
    sigma, n, alpha = 0.25, 60_000_000, 0.001
    w, b = W[:2], B
    x = np.array([0.3, 0.0])
    x = x + (1.5 * sigma - (w @ x + b) / np.linalg.norm(w)) * w / np.linalg.norm(w)  # z=1.5
    true = (w @ x + b) / np.linalg.norm(w)
    assert true == pytest.approx(1.5 * sigma)
    g = SmoothedClassifier(binary(w, b), SmoothingOptions(sigma=sigma, n0=100, n=n,
                                                          alpha=alpha, batch=1_000_000,
                                                          dtype="float64"))
    c = g.certify(x, index=0, label=1)
    assert c.radius is not None and c.radius <= true
    assert c.radius == pytest.approx(true, rel=1e-3)
