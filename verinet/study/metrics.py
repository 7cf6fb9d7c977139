"""Per-model robustness metrics of the study (:func:`model_metrics`).

For one model and one labelled set (raw inputs), on the samples the model classifies
correctly (``n_correct``):

* **I-FGSM** (BIM, :func:`ifgsm`): the attack success rate at ``eps`` (share of the
  correct samples fooled) and the mean minimal L-inf distortion found by a batched
  bisection on each sample's radius (``bisection`` rounds; a sample never fooled, even
  on the whole domain, is left out of the mean and counted in ``ifgsm_unfooled``).
* **C&W** (L2, unbounded): the success rate and the mean L2 distortion of its
  confirmed adversarial examples.
* **CLEVER** (untargeted, L-inf, an *estimate*): the mean score over the correct samples.
* the **Lipschitz radius** (L-inf, *sound*, :func:`verinet.lipschitz.lipschitz_radius`):
  the mean certified radius from local gradient bounds over the correct samples (``nan``
  when the graph engine cannot bound the model).
* **ROBY** on logits (an *estimate*) over every sample of the set.
* optionally the **certified** radius sandwich (``verinet certify --radius`` with a
  per-sample timeout): the certified and empirical robust accuracy at ``eps`` and the
  mean certified lower / attack upper radius; with ``pac`` also the mean DeepPAC radius
  (an estimate with an ``(epsilon, eta)`` guarantee) and the share of PAC radii inside
  their sandwich.
* optionally the **smoothed certified accuracy** (``smooth_sigma > 0``): randomized
  smoothing's ``CERTIFY`` (:mod:`verinet.smoothing`) on every sample of the set, the share
  certified correct with L2 radius ``>= smooth_radius``.  Probabilistic, at confidence
  ``1 - smooth_alpha``, for the *smoothed* classifier at ``smooth_sigma``, not the base
  network: it is reported beside the base network's numbers, never mixed into them.
* optionally **AdvGAN** (``advgan_epochs > 0``, or a trained generator per model): the
  share of the correct samples whose generator-made example is misclassified by the
  float64 IR and the ONNX model (:mod:`verinet.study.advgan`; the generators also give
  the study's AdvGAN transfer matrix).

Every attack's success is confirmed on the float64 IR by :class:`~verinet.attacks.Attack`.
Means over an empty set are ``nan``.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from verinet.attacks.base import Attack
from verinet.ir.graph import Network
from verinet.types import InputError

if TYPE_CHECKING:
    from verinet.advgan.nets import Generator

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StudyOptions:
    """Settings shared by every model of a study.  ``eps``: the L-inf radius of the
    success rates (raw input units); ``ifgsm_steps``: I-FGSM steps; ``bisection``: rounds of the
    per-sample radius search; ``cw_steps``/``cw_binary_steps``: C&W L2 effort;
    ``clever_batches``/``clever_batch_size``: CLEVER's Nb / Ns; ``certify_timeout``:
    seconds per sample for the certified sandwich (0: skipped); ``pac``: also the
    DeepPAC maximum PAC radius of every correct sample (paper defaults, 1/255 grid; needs
    ``certify_timeout > 0``); ``smooth_*``: randomized smoothing's sigma (0: skipped), L2
    radius and CERTIFY's n0, n and alpha; ``advgan_epochs``: epochs of the AdvGAN
    generator trained against each model (0: none trained)."""

    eps: float = 0.1
    ifgsm_steps: int = 20
    bisection: int = 10
    cw_steps: int = 200
    cw_binary_steps: int = 6
    clever_batches: int = 50
    clever_batch_size: int = 128
    certify_timeout: float = 0.0
    pac: bool = False
    smooth_sigma: float = 0.0
    smooth_radius: float = 0.25
    smooth_n0: int = 100
    smooth_n: int = 1000
    smooth_alpha: float = 0.001
    advgan_epochs: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.eps) and 0 < self.eps <= 1):
            raise InputError(f"eps must lie in (0, 1], got {self.eps}")
        for name in ("ifgsm_steps", "bisection", "cw_steps", "cw_binary_steps",
                     "clever_batches", "clever_batch_size"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not (math.isfinite(self.certify_timeout) and self.certify_timeout >= 0):
            raise InputError(f"certify_timeout must be >= 0, got {self.certify_timeout}")
        if not (math.isfinite(self.smooth_sigma) and self.smooth_sigma >= 0):
            raise InputError(f"smooth_sigma must be >= 0 (0: skipped), got {self.smooth_sigma}")
        if not (math.isfinite(self.smooth_radius) and self.smooth_radius >= 0):
            raise InputError(f"smooth_radius must be >= 0, got {self.smooth_radius}")
        if self.smooth_sigma > 0:  # the smoothing options' own checks, before any work
            from verinet.smoothing import SmoothingOptions

            SmoothingOptions(sigma=self.smooth_sigma, n0=self.smooth_n0, n=self.smooth_n,
                             alpha=self.smooth_alpha, seed=self.seed)
        if self.advgan_epochs < 0:
            raise InputError(f"advgan_epochs must be >= 0 (0: no training), got "
                             f"{self.advgan_epochs}")
        if self.pac and self.certify_timeout <= 0:
            raise InputError("PAC radii are compared with the certified sandwich: give a "
                             "certify timeout > 0 with pac")


@dataclass(frozen=True)
class ModelMetrics:
    """The study's numbers for one model (see the module docstring).  Rates are shares in
    [0, 1]; distortions are in raw input units; ``seconds`` per metric group."""

    name: str
    n_samples: int
    n_correct: int
    clean_accuracy: float
    ifgsm_success: float
    ifgsm_mean_linf: float
    ifgsm_unfooled: int
    cw_success: float
    cw_mean_l2: float
    clever_linf: float
    roby: float
    fsa: float
    fsd: float
    fsc: float
    certified_accuracy: float | None = None
    empirical_accuracy: float | None = None
    certified_mean_lower: float | None = None
    attack_mean_upper: float | None = None
    pac_mean: float | None = None
    pac_inside: float | None = None
    lipschitz_mean: float = math.nan
    smoothed_accuracy: float | None = None
    advgan_success: float | None = None
    seconds: tuple[tuple[str, float], ...] = ()

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["seconds"] = dict(self.seconds)
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in d.items()}


def _mean(v: np.ndarray) -> float:
    return float(np.mean(v)) if v.size else math.nan


def correct_mask(network: Network, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Samples the float64 IR classifies correctly (a tie with another class is wrong)."""
    out = network.evaluate(x)
    own = out[np.arange(len(y)), y]
    out = out.copy()
    out[np.arange(len(y)), y] = -np.inf
    return out.max(axis=1) < own


def ifgsm(steps: int) -> Attack:
    """The study's I-FGSM: ``steps`` sign steps of ``1.25 eps / steps`` from x0 (the
    whole ball is reachable), projected after each step."""
    from verinet.attacks import BIM

    return BIM(steps=steps, rel_stepsize=1.25 / steps)


def ifgsm_success(network: Network, x: np.ndarray, y: np.ndarray, eps: float, steps: int,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per sample: fooled at ``eps`` by I-FGSM, and the confirmed adversarial point (x0
    where not fooled)."""
    res = ifgsm(steps)(network, x, y, eps=eps, rng=rng)
    return res.success, res.x


def ifgsm_min_distortion(network: Network, x: np.ndarray, y: np.ndarray, steps: int,
                         rounds: int, rng: np.random.Generator) -> np.ndarray:
    """Per sample the smallest L-inf radius at which I-FGSM fooled the model, found by a
    batched bisection on per-sample radii (``inf`` where even the whole domain [0, 1]
    was not enough)."""
    n = len(y)
    attack = ifgsm(steps)
    best = np.full(n, np.inf)
    res = attack(network, x, y, eps=np.ones(n), rng=rng)
    best[res.success] = res.distance[res.success]
    lo, hi = np.zeros(n), np.where(res.success, res.distance, 1.0)
    live = res.success.copy()
    for _ in range(rounds):
        if not live.any():
            break
        idx = np.flatnonzero(live)
        mid = 0.5 * (lo[idx] + hi[idx])
        r = attack(network, x[idx], y[idx], eps=mid, rng=rng)
        ok = r.success
        hit = idx[ok]
        best[hit] = np.minimum(best[hit], r.distance[ok])
        hi[hit] = np.minimum(mid[ok], best[hit])
        lo[idx[~ok]] = mid[~ok]
    return best


def model_metrics(name: str, network: Network, x: np.ndarray, y: np.ndarray,
                  options: StudyOptions, onnx_eval: object | None = None,
                  generator: Generator | None = None) -> ModelMetrics:
    """Every metric of the study for one model (see the module docstring); with
    ``generator`` (an AdvGAN generator for this model) also its success rate."""
    from verinet.attacks import CWL2
    from verinet.estimates.clever import CleverOptions, clever_scores
    from verinet.estimates.roby import roby

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    if x.ndim != 2 or len(x) != len(y) or len(y) == 0:
        raise InputError(f"need samples (N, n) and N labels, got {x.shape} and {y.shape}")
    seconds: dict[str, float] = {}
    rng = np.random.default_rng(options.seed)
    ok = correct_mask(network, x, y)
    xc, yc = x[ok], y[ok]
    n_ok = int(ok.sum())

    t0 = time.perf_counter()
    if n_ok:
        fooled, _ = ifgsm_success(network, xc, yc, options.eps, options.ifgsm_steps, rng)
        dist = ifgsm_min_distortion(network, xc, yc, options.ifgsm_steps, options.bisection,
                                    rng)
    else:
        fooled, dist = np.zeros(0, dtype=bool), np.zeros(0)
    seconds["ifgsm"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    if n_ok:
        cw = CWL2(steps=options.cw_steps, binary_steps=options.cw_binary_steps)(
            network, xc, yc, eps=None, rng=rng)
        cw_ok, cw_d = cw.success, cw.distance[cw.success]
    else:
        cw_ok, cw_d = np.zeros(0, dtype=bool), np.zeros(0)
    seconds["cw"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    copts = CleverOptions(nb_batches=options.clever_batches, batch_size=options.clever_batch_size)
    scores = np.array([r.score for r in clever_scores(
        network, xc, yc, norm="inf", options=copts, rng=np.random.default_rng(options.seed))])
    seconds["clever"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    lip = lipschitz_radii(network, xc, yc)
    seconds["lipschitz"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    rb = roby(network, x, y)
    seconds["roby"] = time.perf_counter() - t0

    cert: dict[str, float | None] = {}
    if options.certify_timeout > 0 and n_ok:
        t0 = time.perf_counter()
        cert = _certified(network, onnx_eval, xc, yc, len(y), options)
        seconds["certify"] = time.perf_counter() - t0

    smoothed = None
    if options.smooth_sigma > 0:
        t0 = time.perf_counter()
        smoothed = smoothed_accuracy(network, x, y, options)
        seconds["smoothing"] = time.perf_counter() - t0

    advgan = None
    if generator is not None:
        from verinet.study.advgan import advgan_success

        t0 = time.perf_counter()
        advgan = advgan_success(network, onnx_eval, generator, x, y)
        seconds["advgan"] = time.perf_counter() - t0

    finite = dist[np.isfinite(dist)]
    return ModelMetrics(
        name=name, n_samples=len(y), n_correct=n_ok, clean_accuracy=n_ok / len(y),
        ifgsm_success=_mean(fooled.astype(float)), ifgsm_mean_linf=_mean(finite),
        ifgsm_unfooled=int((~np.isfinite(dist)).sum()),
        cw_success=_mean(cw_ok.astype(float)), cw_mean_l2=_mean(cw_d),
        clever_linf=_mean(scores), lipschitz_mean=_mean(lip), roby=rb.roby, fsa=rb.fsa,
        fsd=rb.fsd, fsc=rb.fsc, smoothed_accuracy=smoothed, advgan_success=advgan,
        seconds=tuple(sorted(seconds.items())), **cert)


def lipschitz_radii(network: Network, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The sound L-inf Lipschitz radius of every sample on the domain [0, 1] (empty when
    the graph engine cannot bound the model)."""
    from verinet.ir.passes import strip_softmax
    from verinet.lipschitz import lipschitz_radius
    from verinet.verify.views import ModelViews

    gm = ModelViews(strip_softmax(network)).graph
    if gm.unsupported or not len(y):
        return np.zeros(0)
    n = network.n_inputs
    dom = (np.zeros(n), np.ones(n))
    return np.array([lipschitz_radius(gm, xi, int(yi), math.inf, dom).radius
                     for xi, yi in zip(x, y, strict=True)])


def smoothed_accuracy(network: Network, x: np.ndarray, y: np.ndarray,
                      options: StudyOptions) -> float:
    """Randomized smoothing's certified accuracy at ``options.smooth_radius`` (L2) over
    every sample (abstentions and wrong classes count as failures)."""
    from verinet.smoothing import SmoothingOptions
    from verinet.smoothing.classifier import run_smoothing
    from verinet.smoothing.result import certified_accuracy

    so = SmoothingOptions(sigma=options.smooth_sigma, n0=options.smooth_n0,
                          n=options.smooth_n, alpha=options.smooth_alpha, seed=options.seed)
    rep = run_smoothing(network, x, y, so)
    return float(certified_accuracy(rep.certificates, [options.smooth_radius])[0])


def _certified(network: Network, onnx_eval: object | None, x: np.ndarray, y: np.ndarray,
               n_total: int, options: StudyOptions) -> dict[str, float | None]:
    """The certify sandwich of the correctly classified samples ``x`` of a set of
    ``n_total``; accuracies are shares of the whole set."""
    from verinet.certify.engine import CertifyOptions
    from verinet.runs.dataset import certify

    opts = CertifyOptions(eps=options.eps, radius=True, timeout=options.certify_timeout,
                          seed=options.seed)
    pac = None
    if options.pac:
        from verinet.pac import FeatureMap, PacOptions, RadiusSearch
        from verinet.pac.run import PacRun

        pac = PacRun(PacOptions(seed=options.seed),
                     FeatureMap.normalisation(None, None, network.input_shape), RadiusSearch())
    rep = certify(network, onnx_eval, x, y, opts, pac=pac)  # type: ignore[arg-type]
    s = rep.summary()
    share = len(y) / n_total  # the caller passes the correct samples only
    lowers = np.array([r.radius.lower for r in rep.samples if r.radius is not None])
    uppers = np.array([r.radius.upper for r in rep.samples if r.radius is not None])
    uppers = uppers[np.isfinite(uppers)]
    cert, emp = s.certified_accuracy, s.empirical_accuracy
    return {"certified_accuracy": None if cert is None else cert * share,
            "empirical_accuracy": None if emp is None else emp * share,
            "certified_mean_lower": _mean(lowers[np.isfinite(lowers)]),
            "attack_mean_upper": _mean(uppers)} | _pac_stats(rep)


def _pac_stats(rep: object) -> dict[str, float | None]:
    """Mean PAC radius and the share inside [lower, upper] (empty without DeepPAC)."""
    samples = [r for r in rep.samples if r.pac is not None]  # type: ignore[attr-defined]
    radii = np.array([r.pac.radius for r in samples if r.pac.radius is not None], dtype=float)
    if not samples:
        return {}
    c = rep.pac_comparison()  # type: ignore[attr-defined]
    inside = None if c is None or not c.n else c.inside / c.n
    return {"pac_mean": _mean(radii), "pac_inside": inside}
