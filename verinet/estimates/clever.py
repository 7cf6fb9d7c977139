"""CLEVER (Weng et al., ICLR 2018): an extreme-value **estimate** of the minimal
adversarial Lp distortion.  It is never a bound: gradient masking or an unlucky sample
can make it exceed the true radius (Goodfellow 2018), so every result carries
:attr:`~verinet.types.Guarantee.ESTIMATE` and :func:`check_against_attack` flags scores
above a confirmed adversarial example's distance.

For a sample ``x0`` with class ``c`` (its label, or the predicted class when no label is
given) and each target ``j``, with ``g(x) = f_c(x) - f_j(x)`` on the logits:

1. draw ``Nb`` batches of ``Ns`` points uniformly in the Lp ball ``B_p(x0, R)``, then clip
   each point to the input domain (as the original and ART do: the clipped points are not
   uniform in ``B_p ∩ domain``; points in the ball's part outside the domain pile up on
   the domain's faces).  L-inf: uniform per coordinate; L2: Gaussian direction times
   ``R * U^(1/n)``; L1: ``R`` times a random-sign point of the simplex
   ``{d >= 0, sum d <= 1}`` (normalised exponential spacings).
2. ``b_i`` = the largest dual norm ``||grad g||_q`` (``q = inf, 2, 1`` for
   ``p = 1, 2, inf``) over batch ``i``.  The points are shared by all targets, and the
   gradients are computed only for the targets asked for (one forward pass per chunk of
   points, one backward pass per target).
3. fit a reverse Weibull to the ``b_i`` (:func:`~verinet.estimates.weibull.fit_reverse_weibull`,
   the original's MLE with several shape initialisations and a KS-test selection); its
   location ``a_W`` estimates the local Lipschitz constant.
4. the score for ``j`` is ``min(g(x0) / a_W, R)`` (clamped at 0: a sample already outside
   class ``c`` has distance 0); the untargeted score is the minimum over ``j != c``.

``pool_factor=k`` switches step 1-2 to ART's scheme (``art.metrics.clever_t``): one pool
of ``k * Ns`` gradient norms, and each batch maximum taken over ``Ns`` draws with
replacement from it.  ``g(x0)`` is evaluated in float64 on the IR; gradients in the
lowering's ``dtype`` (float32 by default, as ART and the original use).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from verinet.estimates.common import DUAL, logit_network, norm_name, parse_norm, positive_int
from verinet.estimates.weibull import ORIGINAL_C_INIT, WeibullFit, fit_reverse_weibull_rows
from verinet.ir.graph import Network
from verinet.ir.torch import torch_network
from verinet.types import Box, Guarantee, InputError

log = logging.getLogger(__name__)

#: The original code's sampling radius per norm (inputs of range 1): its L-inf sampler
#: uses 0.1; its L2 and L1 samplers scale by up to 3 and 30.
DEFAULT_RADIUS = {math.inf: 0.1, 2.0: 3.0, 1.0: 30.0}
TARGET_KINDS = ("top2", "random", "least")
ORIGINAL_SEED = 1215
Target = int | str | None


@dataclass(frozen=True)
class CleverOptions:
    """Sampling and fit settings; the defaults are the original code's.

    ``nb_batches`` (Nb) batches of ``batch_size`` (Ns) points; ``radius`` R of the
    sampling ball (None: :data:`DEFAULT_RADIUS` of the norm); ``pool_factor``: None for
    independent batches (the original), k for ART's bootstrap from ``k * Ns`` points;
    ``c_init``, ``shape_reg``, ``min_pvalue``: the Weibull fit
    (:func:`~verinet.estimates.weibull.fit_reverse_weibull`); ``chunk``: points per
    gradient pass (0: about 4M input values).
    """

    nb_batches: int = 500
    batch_size: int = 1024
    radius: float | None = None
    pool_factor: int | None = None
    c_init: tuple[float, ...] = ORIGINAL_C_INIT
    shape_reg: float = 0.01
    min_pvalue: float = 0.001
    chunk: int = 0

    def __post_init__(self) -> None:
        positive_int(self.nb_batches, "nb_batches")
        positive_int(self.batch_size, "batch_size")
        if self.pool_factor is not None:
            positive_int(self.pool_factor, "pool_factor")
        if self.radius is not None and not (math.isfinite(self.radius) and self.radius > 0):
            raise InputError(f"radius must be a positive finite number, got {self.radius}")
        c_init = tuple(float(c) for c in self.c_init)
        if not c_init or not all(math.isfinite(c) and c > 0 for c in c_init):
            raise InputError(f"c_init must be positive finite shapes, got {self.c_init}")
        object.__setattr__(self, "c_init", c_init)
        if not (math.isfinite(self.shape_reg) and self.shape_reg >= 0):
            raise InputError(f"shape_reg must be finite and >= 0, got {self.shape_reg}")
        if not 0 <= self.min_pvalue <= 1:
            raise InputError(f"min_pvalue must lie in [0, 1], got {self.min_pvalue}")
        if isinstance(self.chunk, bool) or not isinstance(self.chunk, int) or self.chunk < 0:
            raise InputError(f"chunk must be an integer >= 0, got {self.chunk!r}")

    def radius_for(self, p: float) -> float:
        return DEFAULT_RADIUS[p] if self.radius is None else float(self.radius)


@dataclass(frozen=True)
class TargetEstimate:
    """CLEVER for one target class ``j``: ``margin`` ``g(x0) = f_c(x0) - f_j(x0)``,
    ``lipschitz`` the Weibull location ``a_W``, ``score`` ``min(max(margin/a_W, 0), R)``."""

    target: int
    margin: float
    lipschitz: float
    score: float
    fit: WeibullFit


@dataclass(frozen=True)
class CleverResult:
    """The CLEVER estimate of one sample (an **estimate**, never a bound).

    ``score``: the smallest per-target score (untargeted: over every ``j != label``),
    in the Lp norm ``norm`` of raw input space; ``target``: the class that attains it;
    ``label``: the class ``c`` of the margins; ``radius``: the sampling radius R (a score
    equal to it is capped); ``n_points``: gradient evaluations per target; ``dim``: the
    number of inputs.
    """

    index: int
    label: int
    predicted: int
    norm: float
    radius: float
    score: float
    target: int
    targets: tuple[TargetEstimate, ...]
    n_points: int
    dim: int
    seconds: float = 0.0
    guarantee: Guarantee = field(default=Guarantee.ESTIMATE)

    @property
    def capped(self) -> bool:
        return self.score >= self.radius

    @property
    def misclassified(self) -> bool:
        return self.label != self.predicted

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index, "label": self.label, "predicted": self.predicted,
            "norm": norm_name(self.norm), "radius": self.radius, "score": self.score,
            "target": self.target, "capped": self.capped, "guarantee": self.guarantee.value,
            "n_points": self.n_points, "seconds": self.seconds,
            "targets": [{"target": t.target, "margin": t.margin, "lipschitz": t.lipschitz,
                         "score": t.score, "weibull": {
                             "location": t.fit.location, "shape": _num(t.fit.shape),
                             "scale": _num(t.fit.scale), "ks_pvalue": _num(t.fit.ks_pvalue),
                             "c_init": _num(t.fit.c_init), "fallback": t.fit.fallback}}
                        for t in self.targets],
        }


def _num(v: float) -> float | None:
    return v if math.isfinite(v) else None


# ----------------------------------------------------------------------------- API


def clever_scores(
    network: Network,
    x: np.ndarray,
    labels: np.ndarray | int | None = None,
    *,
    norm: float | str,
    target: Target = None,
    options: CleverOptions | None = None,
    domain: tuple[float, float] | Box = (0.0, 1.0),
    rng: np.random.Generator | None = None,
    indices: np.ndarray | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> list[CleverResult]:
    """CLEVER estimates for samples ``x`` (N, n) or (n,) in raw input space.

    ``labels``: the class ``c`` per sample (None: the predicted class); ``norm``: the
    perturbation norm p in {1, 2, inf}; ``target``: None (untargeted), a class index, or
    ``"top2"`` / ``"random"`` / ``"least"`` (the runner-up, a uniformly drawn, or the
    lowest-scoring class at ``x0``, as in the original's experiments); ``domain``: the
    input range the sampled points are clipped to; ``rng`` seeds everything (default:
    the original's seed 1215), one sub-seed per sample so a sample's estimate does not
    depend on the others; ``indices``: sample numbers to report (default 0..N-1).
    Raises a one-line :class:`InputError` on bad input.
    """
    opts = options or CleverOptions()
    p = parse_norm(norm)
    xa, lab = _check_samples(network, x, labels)
    lo, hi = _domain(domain, xa)
    idx = np.arange(len(xa)) if indices is None else np.asarray(indices, dtype=np.int64)
    if idx.shape != (len(xa),):
        raise InputError(f"indices have shape {idx.shape}, expected ({len(xa)},)")
    _check_target(target, network.n_outputs)
    logits_net = logit_network(network)
    y0 = logits_net.evaluate(xa) if len(xa) else np.zeros((0, network.n_outputs))
    predicted = np.argmax(y0, axis=1)
    lab = predicted if lab is None else lab
    seeds = (rng if rng is not None else np.random.default_rng(ORIGINAL_SEED)).integers(
        2**62, size=len(xa))
    model = torch_network(logits_net, dtype)
    if torch.device(device).type != "cpu":  # the cached CPU module stays on the CPU
        model = copy.deepcopy(model).to(device)
    out = []
    for i in range(len(xa)):
        start = time.perf_counter()
        sub = np.random.default_rng(int(seeds[i]))
        targets = _targets(target, y0[i], int(lab[i]), sub, int(idx[i]))
        sampler = _Sampler(model, xa[i], lo[i], hi[i], p, opts.radius_for(p), device, dtype,
                           sub)
        maxima = sampler.batch_maxima(int(lab[i]), targets, opts)
        fits = fit_reverse_weibull_rows(maxima, c_init=opts.c_init, shape_reg=opts.shape_reg,
                                        min_pvalue=opts.min_pvalue)
        ests = tuple(_estimate(j, float(y0[i, lab[i]] - y0[i, j]), fit, opts.radius_for(p))
                     for j, fit in zip(targets, fits, strict=True))
        best = min(ests, key=lambda e: e.score)
        out.append(CleverResult(int(idx[i]), int(lab[i]), int(predicted[i]), p,
                                opts.radius_for(p), best.score, best.target, ests,
                                sampler.n_points(opts), network.n_inputs,
                                time.perf_counter() - start))
        log.debug("CLEVER sample %d: %.6g (target %d)", idx[i], best.score, best.target)
    return out


def clever(network: Network, x0: np.ndarray, label: int | None = None,
           **kwargs: Any) -> CleverResult:
    """CLEVER for one sample; keyword arguments as :func:`clever_scores`."""
    x = np.asarray(x0, dtype=np.float64).reshape(1, -1)
    return clever_scores(network, x, None if label is None else np.array([label]), **kwargs)[0]


def _estimate(j: int, margin: float, fit: WeibullFit, radius: float) -> TargetEstimate:
    a = fit.location
    score = radius if a <= 0 else min(max(margin / a, 0.0), radius)
    return TargetEstimate(j, margin, a, float(score), fit)


# ----------------------------------------------------------------------------- sampling


class _Sampler:
    """Points in ``B_p(x0, R)`` clipped to the domain, and their gradient norms."""

    def __init__(self, model: torch.nn.Module, x0: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                 p: float, radius: float, device: str | torch.device, dtype: torch.dtype,
                 rng: np.random.Generator) -> None:
        self.model, self.p, self.q, self.radius = model, p, DUAL[p], radius
        self.x0 = torch.tensor(x0, dtype=dtype, device=device)
        self.lo = torch.tensor(lo, dtype=dtype, device=device)
        self.hi = torch.tensor(hi, dtype=dtype, device=device)
        self.rng = rng
        self.gen = torch.Generator(device=device)
        self.gen.manual_seed(int(rng.integers(2**62)))

    def n_points(self, opts: CleverOptions) -> int:
        k = opts.nb_batches if opts.pool_factor is None else opts.pool_factor
        return k * opts.batch_size

    def points(self, count: int) -> Tensor:
        """``count`` points uniform in the ball, then clipped to the domain."""
        n, g, t = self.x0.numel(), self.gen, self.x0
        if math.isinf(self.p):
            d = torch.rand((count, n), generator=g, dtype=t.dtype, device=t.device) * 2 - 1
        elif self.p == 2:
            d = torch.randn((count, n), generator=g, dtype=t.dtype, device=t.device)
            u = torch.rand((count, 1), generator=g, dtype=t.dtype, device=t.device)
            d = d * (u ** (1.0 / n) / torch.linalg.vector_norm(d, dim=1, keepdim=True))
        else:
            e = torch.empty((count, n + 1), dtype=t.dtype, device=t.device)
            e.exponential_(generator=g)
            signs = torch.randint(0, 2, (count, n), generator=g, device=t.device) * 2 - 1
            d = e[:, :n] / e.sum(dim=1, keepdim=True) * signs.to(t.dtype)
        return torch.clamp(t + self.radius * d, self.lo, self.hi)

    def grad_norms(self, x: Tensor, c: int, targets: tuple[int, ...]) -> Tensor:
        """``||grad (f_c - f_j)||_q`` at each row of ``x``: (len(targets), B)."""
        x = x.detach().requires_grad_(True)
        y = self.model(x)
        out = []
        for k, j in enumerate(targets):
            (g,) = torch.autograd.grad((y[:, c] - y[:, j]).sum(), x,
                                       retain_graph=k + 1 < len(targets))
            out.append(torch.linalg.vector_norm(g, ord=self.q, dim=1))
        return torch.stack(out).detach()

    def _chunk(self, opts: CleverOptions) -> int:
        return opts.chunk or max(64, min(8192, (1 << 22) // max(1, self.x0.numel())))

    def batch_maxima(self, c: int, targets: tuple[int, ...], opts: CleverOptions) -> np.ndarray:
        """The ``nb_batches`` batch maxima per target: (len(targets), Nb) float64."""
        ns, nb, step = opts.batch_size, opts.nb_batches, self._chunk(opts)
        total = self.n_points(opts)
        k = len(targets)
        if opts.pool_factor is None:
            maxima = torch.full((k, nb), -math.inf, dtype=self.x0.dtype, device=self.x0.device)
            for s in range(0, total, step):
                e = min(total, s + step)
                norms = self.grad_norms(self.points(e - s), c, targets)
                batch = (torch.arange(s, e, device=norms.device) // ns).expand(k, -1)
                maxima.scatter_reduce_(1, batch, norms, reduce="amax")
            return maxima.double().cpu().numpy()
        pool = torch.cat([self.grad_norms(self.points(min(total, s + step) - s), c, targets)
                          for s in range(0, total, step)], dim=1).double().cpu().numpy()
        draws = self.rng.integers(total, size=(nb, ns))  # ART: choice with replacement
        return np.stack([pool[:, row].max(axis=1) for row in draws], axis=1)


# ----------------------------------------------------------------------------- checks


def _check_samples(net: Network, x: Any, labels: Any) -> tuple[np.ndarray, np.ndarray | None]:
    xa = np.asarray(x, dtype=np.float64)
    xa = xa.reshape(1, -1) if xa.ndim == 1 else xa
    if xa.ndim != 2 or xa.shape[1] != net.n_inputs:
        raise InputError(f"x has shape {np.shape(x)}, expected (N, {net.n_inputs}) "
                         f"or ({net.n_inputs},)")
    if not np.isfinite(xa).all():
        raise InputError("x contains NaN or infinite values")
    m = net.n_outputs
    if m < 2:
        raise InputError(f"CLEVER needs at least 2 outputs, the model has {m}")
    if labels is None:
        return xa, None
    lab = np.asarray(labels)
    if lab.dtype == bool or not np.issubdtype(lab.dtype, np.integer):
        raise InputError(f"labels must be integers, got dtype {lab.dtype}")
    lab = np.broadcast_to(lab, (len(xa),)) if lab.ndim == 0 else lab
    if lab.shape != (len(xa),):
        raise InputError(f"labels have shape {lab.shape}, expected ({len(xa)},)")
    if len(lab) and ((lab < 0) | (lab >= m)).any():
        raise InputError(f"labels must lie in [0, {m}), got {lab.min()}..{lab.max()}")
    return xa, lab.astype(np.int64)


def _domain(domain: tuple[float, float] | Box, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(domain, Box):
        if domain.dim != x.shape[1]:
            raise InputError(f"domain box has {domain.dim} inputs, expected {x.shape[1]}")
        lo, hi = domain.lower[None, :], domain.upper[None, :]
    else:
        try:
            a, b = (float(v) for v in domain)
        except (TypeError, ValueError):
            raise InputError(f"domain must be (lo, hi) or a Box, got {domain!r}") from None
        if not (a <= b):
            raise InputError(f"domain ({a}, {b}) is empty or NaN")
        lo, hi = np.full((1, x.shape[1]), a), np.full((1, x.shape[1]), b)
    if ((x < lo) | (x > hi)).any():
        raise InputError("a sample lies outside the input domain")
    return np.broadcast_to(lo, x.shape), np.broadcast_to(hi, x.shape)


def _check_target(target: Target, m: int) -> None:
    if target is None:
        return
    if isinstance(target, str):
        if target not in TARGET_KINDS:
            raise InputError(f"target must be a class index or one of {', '.join(TARGET_KINDS)}"
                             f", got {target!r}")
        return
    if isinstance(target, bool) or not isinstance(target, (int, np.integer)) or not (
            0 <= target < m):
        raise InputError(f"target must be a class in [0, {m}), got {target!r}")


def _targets(target: Target, y0: np.ndarray, c: int, rng: np.random.Generator,
             index: int) -> tuple[int, ...]:
    others = [j for j in range(len(y0)) if j != c]
    if target is None:
        return tuple(others)
    if target == "top2":
        return (max(others, key=lambda j: y0[j]),)
    if target == "least":
        return (min(others, key=lambda j: y0[j]),)
    if target == "random":
        return (int(rng.choice(others)),)
    if int(target) == c:  # type: ignore[arg-type]  # an int here (checked)
        raise InputError(f"sample {index}: the target {target} is the sample's own class")
    return (int(target),)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- flag


@dataclass(frozen=True)
class AttackCheck:
    """CLEVER against a confirmed adversarial example: ``exceeds`` is True when the
    estimate is larger than the Lp distance ``attack_bound`` the example proves (a sign of
    gradient masking or of an over-estimate; the true radius is at most the bound)."""

    clever: float
    attack_bound: float
    exceeds: bool

    @property
    def message(self) -> str:
        if not self.exceeds:
            return ""
        return (f"CLEVER estimate {self.clever:.4g} exceeds the attack upper bound "
                f"{self.attack_bound:.4g} (gradient masking or over-estimation)")


def check_against_attack(result: CleverResult, attack_linf: float | None, *,
                         rtol: float = 1e-9) -> AttackCheck:
    """Compare ``result`` with ``attack_linf``, the L-inf distance of the closest confirmed
    adversarial example (``None``/``inf``: none found; certify's ``radius.upper``).

    For ``p = inf`` the bound is ``attack_linf``; for ``p < inf`` the same example lies
    within ``n^(1/p) * attack_linf`` in Lp (``||d||_p <= n^(1/p) ||d||_inf``), a looser
    but still valid bound.  The flag is raised when ``score > bound * (1 + rtol)``.
    """
    if attack_linf is None or not math.isfinite(attack_linf):
        return AttackCheck(result.score, math.inf, False)
    if attack_linf < 0:
        raise InputError(f"the attack distance must be >= 0, got {attack_linf}")
    bound = attack_linf if math.isinf(result.norm) else attack_linf * result.dim ** (
        1.0 / result.norm)
    return AttackCheck(result.score, bound, result.score > bound * (1 + rtol))


def check_sample_report(result: CleverResult, report: Any, *, rtol: float = 1e-9) -> AttackCheck:
    """:func:`check_against_attack` with the attack upper bound of a certify
    ``SampleReport`` (``report.radius.upper``; no radius: nothing to compare)."""
    if int(report.index) != result.index:
        raise InputError(f"CLEVER result for sample {result.index} compared with the certify "
                         f"report of sample {report.index}")
    radius = getattr(report, "radius", None)
    return check_against_attack(result, None if radius is None else float(radius.upper),
                                rtol=rtol)
