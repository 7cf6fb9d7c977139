"""The attack contract: a final public call around a per-attack ``run`` (foolbox style).

:meth:`Attack.__call__` validates the input, lowers the network to torch once, builds each
sample's region (the L-inf ball of ``eps`` around ``x0`` intersected with the domain),
calls :meth:`Attack.run`, and then *always* clips the candidates to the region (float64),
re-runs the IR in float64 and re-checks the robustness property exactly as the verifier
does (:meth:`Property.violated_by`, ties count as misclassified).  A subclass only
proposes points; it can never report a success the IR does not confirm.

Attacks work on logits: a trailing Softmax is stripped for the search (it preserves the
argmax), success is still checked on the full network.

Norms: the region is always the L-inf ball (``eps``, raw input space) ∩ the domain.
``AttackResult.distance`` is measured in the attack's ``norm`` (class attribute,
``"linf"`` unless the attack says otherwise; ``"l1"`` for EAD, ``"l2"`` for L-BFGS and the
Boundary Attack), and ``AttackResult.norm`` names it.
"""

from __future__ import annotations

import abc
import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, final

import numpy as np
import torch
from torch import Tensor

from verinet.ir.graph import Network
from verinet.ir.passes import strip_softmax
from verinet.ir.torch import torch_network
from verinet.spec.property import Property
from verinet.types import Box, InputError, linf_ball_bounds

log = logging.getLogger(__name__)

Model = Callable[[Tensor], Tensor]
Domain = tuple[float, float] | Box
NORMS = ("l1", "l2", "linf")


@dataclass(frozen=True)
class AttackResult:
    """Per-sample outcome, confirmed on the float64 IR.

    ``x`` (N, n) float64: the best point per sample in raw input space (``x0`` where the
    attack failed); ``success`` (N,): misclassified by the IR (ties count) and inside the
    region; ``distance`` (N,): ``||x - x0||`` in ``norm`` (``"linf"`` unless the attack
    minimises another norm, see :attr:`Attack.norm`) for successes, ``inf`` otherwise;
    ``predicted`` (N,): the IR's argmax at ``x``.
    """

    x: np.ndarray
    success: np.ndarray
    distance: np.ndarray
    predicted: np.ndarray
    attack: str
    seconds: float
    norm: str = "linf"


class Attack(abc.ABC):
    """Base of every attack.  Subclasses set ``name`` and ``minimal`` and implement
    :meth:`run`; the public :meth:`__call__` is final (overriding it raises TypeError).

    Fixed-epsilon attacks (``minimal = False``) need ``eps``; minimal-norm attacks treat
    ``eps`` as an optional cap and search the whole domain when it is None.  ``norm``
    (one of :data:`NORMS`, default ``"linf"``) is the norm of the reported distance; the
    region stays the L-inf ball ∩ domain whatever it is.
    """

    name: ClassVar[str]
    minimal: ClassVar[bool]
    norm: ClassVar[str] = "linf"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__call__" in cls.__dict__:
            raise TypeError(f"{cls.__name__} overrides Attack.__call__; implement run() instead")
        if cls.norm not in NORMS:
            raise TypeError(f"{cls.__name__}.norm must be one of {NORMS}, got {cls.norm!r}")

    @final
    def __call__(
        self,
        network: Network,
        x0: np.ndarray,
        labels: np.ndarray | int,
        *,
        eps: float | np.ndarray | None,
        domain: Domain = (0.0, 1.0),
        rng: np.random.Generator | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> AttackResult:
        """Attack samples ``x0`` (N, n) or (n,) with true ``labels`` (N,) or a scalar.

        ``eps``: a scalar or one radius per sample (raw input space); ``domain``: scalar
        bounds or a :class:`Box` of per-coordinate bounds; ``rng`` seeds the attack's
        torch generator (default: seed 0), so equal seeds give equal results.
        Raises :class:`InputError` on bad input.
        """
        start = time.perf_counter()
        x0a, lab, eps_a = _check_inputs(network, x0, labels, eps, self.minimal)
        lo, hi = _region(x0a, eps_a, domain)
        if x0a.shape[0] == 0:
            empty = np.zeros(0)
            return AttackResult(x0a, empty.astype(bool), empty, empty.astype(np.int64),
                                self.name, time.perf_counter() - start, self.norm)
        model = _logit_module(network, dtype, device)
        seed = int((rng if rng is not None else np.random.default_rng(0)).integers(2**62))
        gen = torch.Generator(device=device)
        gen.manual_seed(seed)

        def t(a: np.ndarray) -> Tensor:  # a copy: callers' arrays may be read-only
            return torch.tensor(a, dtype=dtype, device=device)

        eps_t = None if eps_a is None else t(eps_a)
        labels_t = torch.as_tensor(lab, dtype=torch.long, device=device)
        cand = self.run(model, t(x0a), labels_t, eps_t, t(lo), t(hi), gen)
        if tuple(cand.shape) != x0a.shape:
            raise RuntimeError(f"{self.name}.run returned shape {tuple(cand.shape)}, "
                               f"expected {x0a.shape}")
        x = cand.detach().to("cpu", torch.float64).numpy()
        return _confirm(network, x0a, lab, x, lo, hi, self, time.perf_counter() - start)

    @abc.abstractmethod
    def run(self, model: Model, x0: Tensor, labels: Tensor, eps: Tensor | None,
            lo: Tensor, hi: Tensor, gen: torch.Generator) -> Tensor:
        """Candidate points (N, n) for samples ``x0`` (N, n) with ``labels`` (N,) long.

        ``model`` maps (B, n) inputs to (B, m) logits; ``lo``/``hi`` (N, n) bound each
        sample's region (ball ∩ domain; a point outside is clipped afterwards); ``eps``
        (N,) is the ball radius (None: uncapped minimal attack); ``gen`` is the only
        randomness allowed.  All tensors share the attack's dtype and device.
        """


# ----------------------------------------------------------------------------- helpers


def margin_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """``max_{j != l} f_j - f_l`` per sample (N,): >= 0 iff misclassified (ties count)."""
    own = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.scatter(1, labels[:, None], float("-inf"))
    return others.amax(dim=1) - own


def is_adversarial(logits: Tensor, labels: Tensor) -> Tensor:
    """Misclassified with a margin of 256 ulps of the logits' scale (N,) bool.

    The slack makes a point found in float32 survive the float64 re-check in
    :meth:`Attack.__call__`, which uses tolerance 0.
    """
    tol = 256 * torch.finfo(logits.dtype).eps * (1 + logits.detach().abs().amax(dim=1))
    return margin_loss(logits.detach(), labels) >= tol


def linf(x: Tensor, x0: Tensor) -> Tensor:
    """``||x - x0||_inf`` per row (N,)."""
    return (x - x0).abs().amax(dim=1)


def lp_distance(x: Tensor, x0: Tensor, norm: str) -> Tensor:
    """``||x - x0||`` per row (N,) in ``norm`` (one of :data:`NORMS`)."""
    d = x - x0
    if norm == "l1":
        return d.abs().sum(dim=1)
    if norm == "l2":
        return torch.linalg.vector_norm(d, dim=1)
    return d.abs().amax(dim=1)


def np_distance(x: np.ndarray, x0: np.ndarray, norm: str) -> np.ndarray:
    """``||x - x0||`` per row (N,) of float64 arrays in ``norm`` (one of :data:`NORMS`)."""
    d = np.abs(x - x0)
    if norm == "l1":
        return d.sum(axis=1)
    if norm == "l2":
        return np.sqrt((d * d).sum(axis=1))
    return d.max(axis=1, initial=0.0)


class BestAdversarial:
    """The closest adversarial point seen per sample (minimal-norm attacks), in ``norm``
    (default L-inf)."""

    def __init__(self, x0: Tensor, norm: str = "linf") -> None:
        self.x0 = x0
        self.norm = norm
        self.x = x0.clone()
        self.dist = torch.full((x0.shape[0],), float("inf"), dtype=x0.dtype, device=x0.device)

    @property
    def found(self) -> Tensor:
        return torch.isfinite(self.dist)

    def update(self, x: Tensor, logits: Tensor, labels: Tensor) -> Tensor:
        """Record adversarial rows of ``x`` closer than the best so far; return the
        adversarial mask (N,)."""
        x = x.detach()
        adv = is_adversarial(logits, labels)
        d = lp_distance(x, self.x0, self.norm)
        take = adv & (d < self.dist)
        self.x = torch.where(take[:, None], x, self.x)
        self.dist = torch.where(take, d, self.dist)
        return adv


def _check_inputs(net: Network, x0: Any, labels: Any, eps: Any,
                  minimal: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Validated float64 x0 (N, n), int64 labels (N,) and eps (N,) or None."""
    x = np.asarray(x0, dtype=np.float64)
    x = x.reshape(1, -1) if x.ndim == 1 else x
    if x.ndim != 2 or x.shape[1] != net.n_inputs:
        raise InputError(f"x0 has shape {np.shape(x0)}, expected (N, {net.n_inputs}) "
                         f"or ({net.n_inputs},)")
    if not np.isfinite(x).all():
        raise InputError("x0 contains NaN or infinite values")
    m = net.n_outputs
    if m < 2:
        raise InputError(f"an attack needs at least 2 outputs, the model has {m}")
    lab = np.asarray(labels)
    if lab.dtype == bool or not np.issubdtype(lab.dtype, np.integer):
        raise InputError(f"labels must be integers, got dtype {lab.dtype}")
    lab = np.broadcast_to(lab, (x.shape[0],)) if lab.ndim == 0 else lab
    if lab.shape != (x.shape[0],):
        raise InputError(f"labels have shape {lab.shape}, expected ({x.shape[0]},)")
    if ((lab < 0) | (lab >= m)).any():
        raise InputError(f"labels must lie in [0, {m}), got {lab.min()}..{lab.max()}")
    if eps is None:
        if not minimal:
            raise InputError("this attack needs eps (only minimal-norm attacks accept None)")
        return x, lab.astype(np.int64), None
    e = np.asarray(eps, dtype=np.float64)
    if e.ndim > 1 or (e.ndim == 1 and e.shape != (x.shape[0],)):
        raise InputError(f"eps has shape {e.shape}, expected a scalar or ({x.shape[0]},)")
    if not np.isfinite(e).all() or (e < 0).any():
        raise InputError(f"eps must be finite and >= 0, got {eps}")
    return x, lab.astype(np.int64), np.broadcast_to(e, (x.shape[0],)).copy()


def _region(x0: np.ndarray, eps: np.ndarray | None,
            domain: Domain) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample (lo, hi) (N, n) of the ball ∩ domain, with ``hi - x0 <= eps`` and
    ``x0 - lo <= eps`` exact in float64 (bounds nudged inward by an ulp where needed)."""
    if isinstance(domain, Box):
        if domain.dim != x0.shape[1]:
            raise InputError(f"domain box has {domain.dim} inputs, expected {x0.shape[1]}")
        dlo, dhi = domain.lower[None, :], domain.upper[None, :]
    else:
        try:
            a, b = (float(v) for v in domain)
        except (TypeError, ValueError):
            raise InputError(f"domain must be (lo, hi) or a Box, got {domain!r}") from None
        if np.isnan(a) or np.isnan(b) or a > b:
            raise InputError(f"domain ({a}, {b}) is empty or NaN")
        dlo, dhi = np.full((1, x0.shape[1]), a), np.full((1, x0.shape[1]), b)
    if ((x0 < dlo) | (x0 > dhi)).any():
        raise InputError("x0 lies outside the domain")
    lo, hi = np.broadcast_to(dlo, x0.shape).copy(), np.broadcast_to(dhi, x0.shape).copy()
    if eps is not None:
        lo, hi = linf_ball_bounds(x0, eps, lo, hi)
        e = eps[:, None]
        for _ in range(4):  # rounding of x0 +- eps can overshoot by an ulp
            over, under = hi - x0 > e, x0 - lo > e
            if not (over.any() or under.any()):
                break
            hi[over] = np.nextafter(hi[over], -np.inf)
            lo[under] = np.nextafter(lo[under], np.inf)
    if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
        raise InputError("the attack region is unbounded: give eps or a finite domain")
    return lo, hi


def _logit_module(net: Network, dtype: torch.dtype,
                  device: str | torch.device) -> torch.nn.Module:
    """The torch lowering of the network's logits on ``device``.

    A trailing Softmax over the whole output is dropped (argmax is unchanged).  The
    cached CPU module is shared; other devices get a copy so the cache stays on the CPU.
    """
    logits = strip_softmax(net)
    if logits is not net:
        log.info("network ends in Softmax: attacking the logits of '%s'", logits.output_name)
    module = torch_network(logits, dtype)
    if torch.device(device).type != "cpu":
        module = copy.deepcopy(module).to(device)
    return module


def _confirm(net: Network, x0: np.ndarray, lab: np.ndarray, x: np.ndarray,
             lo: np.ndarray, hi: np.ndarray, attack: Attack, seconds: float) -> AttackResult:
    """Clip candidates to the region, re-run the float64 IR, re-check the property."""
    x = np.clip(np.where(np.isfinite(x), x, x0), lo, hi)
    n = x0.shape[0]
    # Rows where the attack returned x0 itself (fixed-eps attacks that failed) share one
    # evaluation for x and x0.
    moved = (x != x0).any(axis=1)
    y = np.empty((n, net.n_outputs), dtype=np.float64)
    if moved.any():
        y[moved] = net.evaluate(x[moved])
    # x0 is run where it matters: where x failed, and for minimal attacks (a
    # misclassified x0 is then the answer); elsewhere its outputs are never used.
    if (~moved).any():
        y[~moved] = net.evaluate(x0[~moved])
    ok_x = _misclassified(x, y, lab, lo, hi, net.n_outputs)
    need = ~ok_x | attack.minimal
    y0 = np.empty_like(y)
    y0[~moved] = y[~moved]
    need_run = need & moved
    if need_run.any():
        y0[need_run] = net.evaluate(x0[need_run])
    ok_0 = np.zeros(n, dtype=bool)
    ok_0[need] = _misclassified(x0[need], y0[need], lab[need], lo[need], hi[need],
                                net.n_outputs)
    y = np.concatenate([y, y0])
    use_x = ok_x & ~(ok_0 & attack.minimal)  # a misclassified x0 is the minimal answer
    x_out = np.where(use_x[:, None], x, x0)
    y_out = np.where(use_x[:, None], y[:n], y[n:])
    success = ok_x | ok_0
    dist = np.where(success, np_distance(x_out, x0, attack.norm), np.inf)
    log.debug("%s: %d/%d samples fooled", attack.name, int(success.sum()), n)
    return AttackResult(x_out, success, dist, np.argmax(y_out, axis=1), attack.name, seconds,
                        attack.norm)


def _misclassified(x: np.ndarray, y: np.ndarray, lab: np.ndarray, lo: np.ndarray,
                   hi: np.ndarray, m: int) -> np.ndarray:
    """Per sample: ``x`` in its region and ``y`` in the robustness property's unsafe set.

    A vectorised pre-filter (inside the region, some other logit >= the label's) skips
    the samples that cannot pass; the property object decides for the others."""
    out = np.zeros(x.shape[0], dtype=bool)
    rows = np.arange(x.shape[0])
    own = y[rows, lab]
    rival = np.where(np.arange(m)[None, :] == lab[:, None], -np.inf, y).max(axis=1)
    maybe = (rival >= own) & (x >= lo).all(axis=1) & (x <= hi).all(axis=1)
    for i in np.flatnonzero(maybe):
        prop = Property.robustness(Box(lo[i], hi[i]), int(lab[i]), m)
        out[i] = prop.violated_by(x[i], y[i]) >= 0
    return out
