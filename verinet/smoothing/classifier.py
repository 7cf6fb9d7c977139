"""The smoothed classifier and the paper's ``PREDICT`` and ``CERTIFY``.

For a base classifier ``f`` and noise level ``sigma`` the smoothed classifier is
``g(x) = argmax_c P(f(x + d) = c)`` with ``d ~ N(0, sigma^2 I)``.  Theorem 1 of Cohen,
Rosenfeld and Kolter (ICML 2019): if ``P(f(x + d) = cA) >= pA`` with ``pA > 1/2``, then
``g(x + e) = cA`` for every ``||e||_2 < sigma * Phi^-1(pA)``.

``CERTIFY(f, sigma, x, n0, n, alpha)``: the class ``cA`` most voted by ``n0`` draws,
then ``nA`` its votes among ``n`` fresh draws and ``pA = LowerConfBound(nA, n, 1 -
alpha)`` (Clopper-Pearson); return ``cA`` with radius ``sigma Phi^-1(pA)`` if ``pA >
1/2``, else abstain.  With probability at least ``1 - alpha`` a returned class is
``g(x)`` and is robust within the radius (Theorem 1; ``pB = 1 - pA``).

``PREDICT(f, sigma, x, n, alpha)``: the top two classes of ``n`` draws, with counts
``nA >= nB``; return the top one if the two-sided binomial test of ``nA`` out of ``nA +
nB`` at ``p = 1/2`` has p-value ``<= alpha``, else abstain.  The probability of
returning a class other than ``g(x)`` is at most ``alpha``.

Both are probabilistic statements about ``g``, not about ``f`` (see
:mod:`verinet.smoothing.result`).  Draws follow :mod:`verinet.smoothing.noise`: seeded
from ``(seed, sample index, phase)``, batched, not clipped unless asked.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from verinet.ir.graph import Network
from verinet.smoothing.noise import BaseClassifier, Phase, check_point, class_counts, noise_rng
from verinet.smoothing.options import SmoothingOptions
from verinet.smoothing.result import Certificate, Prediction, SmoothingReport
from verinet.smoothing.stats import binomial_pvalue, certified_radius, clopper_pearson_lower
from verinet.types import InputError

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class SmoothedClassifier:
    """``g`` of ``network`` at ``options.sigma``; :meth:`certify` and :meth:`predict` run
    the paper's algorithms with the options' sample sizes, ``alpha``, batch and seed."""

    network: Network
    options: SmoothingOptions
    base: BaseClassifier = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "base", BaseClassifier(self.network, self.options.dtype))

    @property
    def n_classes(self) -> int:
        return self.base.n_classes

    def counts(self, x: np.ndarray, num: int, *, index: int, phase: Phase) -> np.ndarray:
        """Class counts of ``num`` noisy copies of ``x`` (the stream of ``index`` and
        ``phase``)."""
        o = self.options
        return class_counts(self.base, check_point(x, self.base.n_inputs), sigma=o.sigma,
                            num=num, rng=noise_rng(o.seed, index, phase), batch=o.batch,
                            clip=o.clip)

    def certify(self, x: np.ndarray, *, index: int = 0, label: int | None = None
                ) -> Certificate:
        """``CERTIFY`` at ``x`` (flat, raw input space); ``index`` seeds its draws."""
        o = self.options
        start = time.perf_counter()
        counts0 = self.counts(x, o.n0, index=index, phase=Phase.SELECTION)
        selected = int(np.argmax(counts0))
        count = int(self.counts(x, o.n, index=index, phase=Phase.ESTIMATION)[selected])
        p_lower = clopper_pearson_lower(count, o.n, o.alpha)
        ok = p_lower > 0.5
        return Certificate(
            index=index, label=label, prediction=selected if ok else None, selected=selected,
            selection_count=int(counts0[selected]), count=count, n0=o.n0, n=o.n,
            p_lower=p_lower, radius=certified_radius(o.sigma, p_lower) if ok else None,
            sigma=o.sigma, alpha=o.alpha, seconds=time.perf_counter() - start)

    def predict(self, x: np.ndarray, *, index: int = 0, label: int | None = None
                ) -> Prediction:
        """``PREDICT`` at ``x`` with ``options.n`` draws; ``index`` seeds them."""
        o = self.options
        start = time.perf_counter()
        counts = self.counts(x, o.n, index=index, phase=Phase.PREDICTION)
        order = np.argsort(-counts, kind="stable")  # ties: the lower class first
        a = int(order[0])
        b = int(order[1]) if counts.size > 1 else a
        na, nb = int(counts[a]), (int(counts[b]) if b != a else 0)
        p = binomial_pvalue(na, na + nb)
        return Prediction(index=index, label=label, prediction=a if p <= o.alpha else None,
                          top=(a, b), counts=(na, nb), n=o.n, p_value=p, sigma=o.sigma,
                          alpha=o.alpha, seconds=time.perf_counter() - start)


def run_smoothing(network: Network, x: np.ndarray, y: Sequence[int] | np.ndarray | None,
                  options: SmoothingOptions, *, mode: str = "certify",
                  indices: Sequence[int] | np.ndarray | None = None, model: str = "",
                  data: str = "",
                  on_sample: Callable[[Certificate | Prediction], None] | None = None
                  ) -> SmoothingReport:
    """``CERTIFY`` (or ``PREDICT``) every row of ``x`` (N, n) with labels ``y`` (or
    None); ``indices`` (default 0..N-1) are the samples' indices in their data file,
    which seed their draws.  ``on_sample`` sees each result as it finishes; on an
    interrupt the results so far are lost to the caller unless it keeps them there."""
    if mode not in ("certify", "predict"):
        raise InputError(f"mode must be certify or predict, got {mode!r}")
    xs = np.asarray(x, dtype=np.float64)
    if xs.ndim != 2:
        raise InputError(f"inputs must be a (N, n) array, got shape {xs.shape}")
    idx = np.arange(len(xs)) if indices is None else np.asarray(indices, dtype=np.int64)
    labels = [None] * len(xs) if y is None else [int(v) for v in np.asarray(y).reshape(-1)]
    if len(idx) != len(xs) or len(labels) != len(xs):
        raise InputError(f"{len(xs)} inputs, {len(labels)} labels, {len(idx)} indices")
    g = SmoothedClassifier(network, options)
    run = g.certify if mode == "certify" else g.predict
    start = time.perf_counter()
    results: list[Certificate | Prediction] = []
    for xi, i, lab in zip(xs, idx, labels, strict=True):
        r = run(xi, index=int(i), label=lab)
        log.debug("sample %d: %s", int(i), r)
        results.append(r)
        if on_sample is not None:
            on_sample(r)
    return SmoothingReport(mode, options, tuple(results), model=model, data=data,
                           seconds=time.perf_counter() - start)
