"""Box-constrained L-BFGS attack (Szegedy et al., ICLR 2014), L2, minimal-norm.

For a target class ``t`` and a constant ``c > 0`` the attack minimises

    ``c * ||x - x0||_2^2 + loss(f(x), t)``  subject to ``lo <= x <= hi``

with scipy's L-BFGS-B from ``x0`` (gradients from torch autograd).  ``loss="ce"``
(Szegedy's choice) is the cross-entropy of the logits towards ``t``,
``logsumexp(f) - f_t``; ``loss="pair"`` is the cross-entropy restricted to the true
class ``l`` and ``t``, ``log(1 + exp(f_l - f_t))``, whose level sets near the boundary
follow ``f_l = f_t`` (the other classes do not bend the path: on a linear model it ends
exactly at the closest point of that boundary, where ``ce`` can overshoot by a few %).
Szegedy's ``|r|`` is taken squared, which keeps the objective smooth at ``x0``.

A large ``c`` keeps ``x`` at ``x0``, a small one crosses the decision boundary, so the
attack looks for the largest ``c`` whose minimiser is misclassified: a line search from
``initial_const`` (multiplying or dividing by ``const_factor`` up to ``search_steps``
times) brackets it, then ``binary_steps`` bisections (geometric means) narrow the
bracket.  Every misclassified minimiser is a candidate; the closest in L2 is returned.

Untargeted use (verinet's robustness property): the ``targets`` classes with the smallest
linearised distance ``(f_l - f_j) / ||grad f_l - grad f_j||_2`` at ``x0`` are tried in turn
and the closest success over them is kept.

Conventions in verinet: ``eps`` is an optional L-inf cap (the region is the L-inf ball
∩ domain, which is the L-BFGS-B box; None searches the whole domain); the reported
``AttackResult.distance`` is ``||x - x0||_2``.  Samples are attacked one at a time.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from verinet.attacks.base import Attack, Model, is_adversarial
from verinet.types import InputError

LOSSES = ("ce", "pair")


@dataclass(frozen=True, kw_only=True)
class LBFGS(Attack):
    """``maxiter`` L-BFGS-B iterations (history ``memory``) per minimisation; the search
    on ``c`` as in the module docstring; ``targets`` target classes per sample."""

    name: ClassVar[str] = "lbfgs"
    minimal: ClassVar[bool] = True
    norm: ClassVar[str] = "l2"

    initial_const: float = 1.0
    const_factor: float = 10.0
    search_steps: int = 6
    binary_steps: int = 10
    maxiter: int = 100
    memory: int = 15
    targets: int = 1
    loss: str = "ce"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.initial_const) and self.initial_const > 0):
            raise InputError(f"{self.name}: initial_const must be > 0")
        if not (math.isfinite(self.const_factor) and self.const_factor > 1):
            raise InputError(f"{self.name}: const_factor must be > 1")
        if min(self.search_steps, self.binary_steps) < 0:
            raise InputError(f"{self.name}: search_steps and binary_steps must be >= 0")
        if min(self.maxiter, self.memory, self.targets) < 1:
            raise InputError(f"{self.name}: maxiter, memory and targets must be >= 1")
        if self.loss not in LOSSES:
            raise InputError(f"{self.name}: loss must be one of {LOSSES}, got {self.loss!r}")

    def run(self, model: Model, x0: Tensor, labels: Tensor, eps: Tensor | None,
            lo: Tensor, hi: Tensor, gen: torch.Generator) -> Tensor:
        out = x0.clone()
        with torch.no_grad():
            done = is_adversarial(model(x0), labels)
        order = target_order(model, x0, labels)
        with _one_blas_thread():
            for i in np.flatnonzero(~done.cpu().numpy()):
                problem = _Problem(model, x0[i], int(labels[i]), lo[i], hi[i])
                for t in order[i, :self.targets].tolist():
                    self._search(problem, int(t))
                if problem.best is not None:
                    out[i] = problem.best
        return out

    def _search(self, p: _Problem, target: int) -> None:
        """Bracket the largest successful ``c`` by the line search, then bisect."""
        ok_c, bad_c = None, None
        c = self.initial_const
        if p.solve(c, target, self):
            ok_c = c
            for _ in range(self.search_steps):
                c *= self.const_factor
                if not p.solve(c, target, self):
                    bad_c = c
                    break
                ok_c = c
        else:
            bad_c = c
            for _ in range(self.search_steps):
                c /= self.const_factor
                if p.solve(c, target, self):
                    ok_c = c
                    break
                bad_c = c
        if ok_c is None or bad_c is None:
            return  # never crossed, or crossed even at the largest c tried
        for _ in range(self.binary_steps):
            mid = math.sqrt(ok_c * bad_c)
            if p.solve(mid, target, self):
                ok_c = mid
            else:
                bad_c = mid


def _one_blas_thread() -> contextlib.AbstractContextManager[object]:
    """Limit BLAS to one thread while L-BFGS-B runs, when threadpoolctl is installed
    (optional, not a dependency).  L-BFGS-B's dense algebra is tiny: a threaded BLAS
    spends most of the time synchronising (measured 7x slower on a busy 2-core machine);
    the results are the same."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def target_order(model: Model, x0: Tensor, labels: Tensor) -> np.ndarray:
    """Per sample the other classes (N, m - 1) by increasing linearised L2 distance
    ``(f_l - f_j) / ||grad f_l - grad f_j||_2`` at ``x0``."""
    x = x0.detach().clone().requires_grad_(True)
    logits = model(x)
    m = logits.shape[1]
    grads = torch.stack([torch.autograd.grad(logits[:, j].sum(), x, retain_graph=j < m - 1)[0]
                         for j in range(m)], dim=1)  # (N, m, n)
    rows = torch.arange(x0.shape[0])
    gap = (logits[rows, labels][:, None] - logits).detach()
    norm = torch.linalg.vector_norm(grads[rows, labels][:, None, :] - grads, dim=2)
    dist = gap.abs() / norm.clamp_min(1e-12)
    dist[rows, labels] = float("inf")
    return torch.argsort(dist, dim=1, stable=True)[:, :m - 1].cpu().numpy()


class _Problem:
    """One sample: L-BFGS-B minimisations and the closest misclassified minimiser."""

    def __init__(self, model: Model, x0: Tensor, label: int, lo: Tensor, hi: Tensor) -> None:
        self.model, self.x0, self.label = model, x0, label
        self.dtype, self.device = x0.dtype, x0.device
        self.x0_np = x0.detach().to("cpu", torch.float64).numpy()
        from scipy.optimize import Bounds  # 0.35 s to import: only this attack needs it

        self.bounds = Bounds(lo.to("cpu", torch.float64).numpy(),
                             hi.to("cpu", torch.float64).numpy())
        self.best: Tensor | None = None
        self.best_dist = math.inf
        self.label_t = torch.tensor([label], device=self.device)
        # float32 objectives are noisy below ~1e-7 relative: stop there
        self.ftol = 10 * float(torch.finfo(self.dtype).eps)

    def solve(self, c: float, target: int, attack: LBFGS) -> bool:
        """Minimise at ``c`` towards ``target``; True if the minimiser is misclassified."""

        def fun(z: np.ndarray) -> tuple[float, np.ndarray]:
            x = torch.tensor(z, dtype=self.dtype, device=self.device).requires_grad_(True)
            logits = self.model(x[None])[0]
            if attack.loss == "ce":
                loss = torch.logsumexp(logits, 0) - logits[target]
            else:
                loss = torch.nn.functional.softplus(logits[self.label] - logits[target])
            d = x - self.x0
            obj = c * (d * d).sum() + loss
            (g,) = torch.autograd.grad(obj, x)
            return float(obj.detach()), g.to("cpu", torch.float64).numpy()

        from scipy.optimize import minimize

        res = minimize(fun, self.x0_np, jac=True, method="L-BFGS-B", bounds=self.bounds,
                       options={"maxiter": attack.maxiter, "maxcor": attack.memory,
                                "ftol": self.ftol})
        z = np.clip(res.x, self.bounds.lb, self.bounds.ub)
        x = torch.tensor(z, dtype=self.dtype, device=self.device)
        with torch.no_grad():
            adv = bool(is_adversarial(self.model(x[None]), self.label_t)[0])
        if adv:
            dist = float(torch.linalg.vector_norm(x.double() - self.x0.double()))
            if dist < self.best_dist:
                self.best, self.best_dist = x, dist
        return adv
