"""Scenario sample counts and the options of a DeepPAC run.

The guarantee of a DeepPAC verdict comes from scenario optimisation (Campi and Garatti):
a convex program with ``d`` decision variables solved on ``K`` i.i.d. samples has, with
probability at least ``1 - eta`` over the samples, a solution that violates the
constraint of a fresh sample with probability at most ``epsilon`` whenever

    ``K >= (2 / epsilon) * (ln(1 / eta) + d)``

(the closed-form sufficient version of the binomial condition, as used by the DeepPAC
artifact).  Two programs use it:

* Phase 3 (the margin ``lambda*``, ``d = 1``):
  ``K3 = ceil((2 / epsilon) * (ln(1 / eta) + 1))`` -- 1582 samples at the defaults.
* Phase 2 (the focused re-fit of ``kappa`` coefficients and the margin, ``d = kappa + 1``):
  ``kappa = min(floor(K2 * epsilon / 2 - ln(1 / eta) - 1), n + 1)`` -- 32 at the defaults.

Only Phase 3 carries the guarantee verinet states (see :mod:`verinet.pac`); the Phase 2
count is kept because it is part of the published method (it fixes ``kappa``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from verinet.types import InputError

PHASE1_METHODS = ("lawson", "lstsq", "lp")


def scenario_count(epsilon: float, eta: float, d: int = 1) -> int:
    """Samples for a scenario program with ``d`` decision variables at error rate
    ``epsilon`` and significance ``eta``: ``ceil((2/epsilon)(ln(1/eta) + d))``."""
    _check_rates(epsilon, eta)
    if d < 1:
        raise InputError(f"a scenario program needs at least 1 decision variable, got {d}")
    return math.ceil(2.0 / epsilon * (math.log(1.0 / eta) + d))


def free_coefficients(k2: int, epsilon: float, eta: float, n_features: int) -> int:
    """DeepPAC's ``kappa``: ``min(floor(K2*epsilon/2 - ln(1/eta) - 1), n_features)``,
    the most coefficients a Phase 2 fit on ``k2`` samples may re-learn (negative when
    ``k2`` is too small for the requested guarantee)."""
    _check_rates(epsilon, eta)
    return min(math.floor(k2 * epsilon / 2.0 - math.log(1.0 / eta) - 1.0), n_features)


def _check_rates(epsilon: float, eta: float) -> None:
    for name, v in (("epsilon (error rate)", epsilon), ("eta (significance)", eta)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and 0.0 < v < 1.0):
            raise InputError(f"{name} must lie in (0, 1), got {v}")


@dataclass(frozen=True)
class PacOptions:
    """Settings of DeepPAC (Li et al., ICSE 2022); the defaults are the paper's MNIST ones.

    ``epsilon``/``eta``: error rate and significance of the PAC guarantee.  ``k1``:
    Phase 1 samples (coarse fit); ``k2``: Phase 2 samples (focused re-fit of ``kappa``
    coefficients); ``k3``: Phase 3 scenario samples (``None``: the formula; fewer than
    the formula is refused); ``kappa``: ``None`` for the formula, else ``0 <= kappa``.
    ``phase1``: ``"lawson"`` (least squares and ``lawson_steps`` steps of Lawson's
    algorithm towards the Chebyshev fit; fast, close to the artifact's), ``"lstsq"`` (least
    squares only) or ``"lp"`` (the artifact's Chebyshev LP, slow); see
    :mod:`verinet.pac.learn`.  ``coef_bound``: the box ``[-b, b]`` on every coefficient.
    ``seed``: every verdict draws its samples from ``numpy.random.RandomState(seed)``
    (K1, then K2, then K3 points, one uniform draw per point, as the artifact does).
    ``dtype``: ``"float32"`` or ``"float64"`` forward passes; ``batch``: forward-pass
    batch size.  ``check_samples``: a sampled point the network misclassifies is
    replayed as a counterexample too (the artifact checks the vertices only).
    """

    epsilon: float = 0.01
    eta: float = 0.001
    k1: int = 2000
    k2: int = 8000
    k3: int | None = None
    kappa: int | None = None
    phase1: str = "lawson"
    lawson_steps: int = 1
    coef_bound: float = 100.0
    seed: int = 0
    dtype: str = "float32"
    batch: int = 4096
    check_samples: bool = True

    def __post_init__(self) -> None:
        _check_rates(self.epsilon, self.eta)
        for name in ("k1", "k2"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise InputError(f"{name} must be a positive number of samples, got {v}")
        need = scenario_count(self.epsilon, self.eta, 1)
        if self.k3 is not None and (not isinstance(self.k3, int) or self.k3 < need):
            raise InputError(
                f"k3 = {self.k3} samples are too few for the (epsilon {self.epsilon}, eta "
                f"{self.eta}) guarantee: the scenario bound needs at least {need}")
        if self.kappa is not None and (not isinstance(self.kappa, int) or self.kappa < 0):
            raise InputError(f"kappa must be an integer >= 0, got {self.kappa}")
        if self.kappa is None and free_coefficients(self.k2, self.epsilon, self.eta, 1) < 0:
            raise InputError(
                f"k2 = {self.k2} samples are too few for the (epsilon {self.epsilon}, eta "
                f"{self.eta}) guarantee: kappa = floor(k2*epsilon/2 - ln(1/eta) - 1) < 0; "
                f"need k2 >= {math.ceil(2.0 / self.epsilon * (math.log(1 / self.eta) + 1))}")
        if self.phase1 not in PHASE1_METHODS:
            raise InputError(f"phase1 must be one of {', '.join(PHASE1_METHODS)}, "
                             f"got {self.phase1!r}")
        if not isinstance(self.lawson_steps, int) or self.lawson_steps < 1:
            raise InputError(f"lawson_steps must be a positive integer, got {self.lawson_steps}")
        if not (math.isfinite(self.coef_bound) and self.coef_bound > 0):
            raise InputError(f"coef_bound must be a positive number, got {self.coef_bound}")
        if self.dtype not in ("float32", "float64"):
            raise InputError(f"dtype must be float32 or float64, got {self.dtype!r}")
        if not isinstance(self.batch, int) or self.batch < 1:
            raise InputError(f"batch must be a positive integer, got {self.batch}")
        if not isinstance(self.seed, int) or not 0 <= self.seed < 2**32:
            raise InputError(f"seed must be an integer in [0, 2**32), got {self.seed}")

    @property
    def phase1_label(self) -> str:
        """The Phase 1 method as reports name it: ``lawson(steps)``, ``lstsq`` or ``lp``."""
        return f"lawson({self.lawson_steps})" if self.phase1 == "lawson" else self.phase1

    def counts(self, n_inputs: int) -> ScenarioCounts:
        """The sample counts of one verdict on an ``n_inputs``-dimensional input."""
        k3 = scenario_count(self.epsilon, self.eta, 1) if self.k3 is None else self.k3
        kappa = free_coefficients(self.k2, self.epsilon, self.eta, n_inputs + 1)
        if self.kappa is not None:
            kappa = min(self.kappa, n_inputs + 1)
        return ScenarioCounts(self.k1, self.k2, k3, kappa)


@dataclass(frozen=True)
class ScenarioCounts:
    """Samples per phase of one verdict and the number of re-fitted coefficients."""

    k1: int
    k2: int
    k3: int
    kappa: int

    @property
    def forward_passes(self) -> int:
        return self.k1 + self.k2 + self.k3
