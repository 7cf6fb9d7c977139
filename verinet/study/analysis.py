"""Across models: the transfer-attack matrix, the accuracy-vs-robustness Pareto front
and rank correlations between the metrics and the attack success rate."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from verinet.ir.graph import Network
from verinet.study.metrics import ModelMetrics, correct_mask, ifgsm_success


@dataclass(frozen=True)
class Correlation:
    """Spearman's rho and Kendall's tau (with p-values) of ``metric`` against
    ``against`` over the models where both are defined (``n``)."""

    metric: str
    against: str
    n: int
    spearman: float
    spearman_p: float
    kendall: float
    kendall_p: float

    def as_dict(self) -> dict[str, object]:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in self.__dict__.items()}


def transfer_matrix(networks: Sequence[Network], x: np.ndarray, y: np.ndarray, eps: float,
                    steps: int, seed: int = 0) -> np.ndarray:
    """``T[i, j]``: the share of the samples model ``j`` classifies correctly that the
    I-FGSM examples crafted on model ``i`` (at ``eps``) make ``j`` misclassify.

    A sample whose attack failed on ``i`` contributes its unperturbed input, which ``j``
    classifies correctly, so ``T[i, i]`` is ``i``'s own success rate on its correct
    samples.  Misclassification is checked on ``j``'s float64 IR (ties count).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    correct = [correct_mask(net, x, y) for net in networks]
    advs = []
    for i, net in enumerate(networks):
        rng = np.random.default_rng([seed, i])
        adv = x.copy()
        ok = correct[i]
        if ok.any():
            fooled, xa = ifgsm_success(net, x[ok], y[ok], eps, steps, rng)
            adv[np.flatnonzero(ok)[fooled]] = xa[fooled]
        advs.append(adv)
    return fooled_shares(networks, advs, y, correct)


def fooled_shares(networks: Sequence[Network], advs: Sequence[np.ndarray], y: np.ndarray,
                  correct: Sequence[np.ndarray]) -> np.ndarray:
    """``T[i, j]``: the share of model ``j``'s correct samples (``correct[j]``) that the
    inputs ``advs[i]`` (one row per sample) make ``j`` misclassify (float64 IR, ties
    count); nan where ``j`` has no correct sample."""
    k = len(networks)
    out = np.full((len(advs), k), math.nan)
    for j, net in enumerate(networks):
        cj = correct[j]
        if not cj.any():
            continue
        for i, adv in enumerate(advs):
            out[i, j] = float((~correct_mask(net, adv[cj], y[cj])).mean())
    return out


def pareto_front(accuracy: Sequence[float], robustness: Sequence[float]) -> list[int]:
    """Indices of the models no other model beats on both (higher is better for both;
    a model with a NaN value is never on the front), by increasing accuracy."""
    a, r = np.asarray(accuracy, dtype=float), np.asarray(robustness, dtype=float)
    front = []
    for i in range(len(a)):
        if not (math.isfinite(a[i]) and math.isfinite(r[i])):
            continue
        dominated = ((a >= a[i]) & (r >= r[i]) & ((a > a[i]) | (r > r[i]))).any()
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (a[i], -r[i]))


#: metrics compared with the attack success rate (higher = more robust, except
#: ``advgan_success``, itself an attack success rate: it ranks like it when it correlates
#: *positively*)
RANKED = ("clever_linf", "lipschitz_mean", "roby", "fsa", "fsd", "ifgsm_mean_linf",
          "cw_mean_l2", "certified_mean_lower", "certified_accuracy", "pac_mean",
          "smoothed_accuracy", "advgan_success", "clean_accuracy")


def rank_correlations(models: Sequence[ModelMetrics], against: str = "ifgsm_success",
                      metrics: Sequence[str] = RANKED) -> list[Correlation]:
    """Rank correlations of each metric with ``against`` across the models.  A robust
    metric that ranks models like the attack success rate correlates *negatively* with
    it (more robust, fewer successes)."""
    from scipy.stats import kendalltau, spearmanr

    out = []
    base = np.array([_value(m, against) for m in models])
    for name in metrics:
        v = np.array([_value(m, name) for m in models])
        ok = np.isfinite(v) & np.isfinite(base)
        n = int(ok.sum())
        if n < 3 or np.ptp(v[ok]) == 0 or np.ptp(base[ok]) == 0:
            out.append(Correlation(name, against, n, math.nan, math.nan, math.nan, math.nan))
            continue
        rho, rp = spearmanr(v[ok], base[ok])
        tau, tp = kendalltau(v[ok], base[ok])
        out.append(Correlation(name, against, n, float(rho), float(rp), float(tau), float(tp)))
    return out


def _value(m: ModelMetrics, name: str) -> float:
    v = getattr(m, name)
    return math.nan if v is None else float(v)
