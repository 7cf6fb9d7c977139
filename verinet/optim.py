"""Adam without ``torch.optim``: constructing a ``torch.optim`` optimiser imports
``torch._dynamo``, which costs 1.5 s per process on this machine (measured: ``import
torch`` 1.8 s, then the first ``torch.optim.Adam(...)`` 1.5 s).  Every engine that runs
gradient ascent (alpha-CROWN, the split bounds of ReLU branch and bound, C&W, training)
uses this one instead, so a ``verinet verify`` process never pays for it.

:class:`Adam` repeats the arithmetic of ``torch.optim.Adam``'s single-tensor CPU path
(L2 weight decay added to the gradient, no amsgrad) operation for operation, so training
gives the same bits as with ``torch.optim.Adam`` (checked by a test and by
``scripts/train_digits.py`` reproducing the bundled model byte for byte).  Each parameter
may have its own learning rate (``torch.optim``'s parameter groups).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import Tensor


class Adam:
    """Adam (Kingma & Ba) over ``params`` with L2 ``weight_decay``; ``lr`` is one rate for
    every parameter or one per parameter."""

    def __init__(self, params: Iterable[Tensor], *, lr: float | Sequence[float],
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        self.params = list(params)
        lrs = [float(lr)] * len(self.params) if isinstance(lr, (int, float)) else list(lr)
        if len(lrs) != len(self.params):
            raise ValueError(f"{len(lrs)} learning rates for {len(self.params)} parameters")
        self.lrs = lrs
        self.betas, self.eps, self.weight_decay = betas, eps, weight_decay
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        self.t = 0

    def keep_rows(self, rows: Tensor) -> list[Tensor]:
        """Restrict every parameter and its moment estimates to ``rows`` of their first
        dimension (the others leave the optimisation); returns the new parameters, fresh
        leaves that replace the old ones.  The remaining rows' steps are unchanged when the
        objective is a sum of per-row terms."""
        self.params = [p.detach()[rows].requires_grad_(True) for p in self.params]
        self.m = [m[rows] for m in self.m]
        self.v = [v[rows] for v in self.v]
        return self.params

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def ascend(self, objective: Tensor) -> None:
        """One step that increases ``objective`` (a scalar), taking the gradient with
        respect to the parameters only (nothing else accumulates a ``.grad``)."""
        grads = torch.autograd.grad(-objective, self.params, allow_unused=True)
        for p, g in zip(self.params, grads, strict=True):
            p.grad = g
        self.step()

    def descend(self, loss: Tensor) -> None:
        """One step that decreases ``loss`` (a scalar); see :meth:`ascend`."""
        self.ascend(-loss)

    @torch.no_grad()
    def step(self) -> None:
        b1, b2 = self.betas
        self.t += 1
        step = float(self.t)
        c1 = 1 - b1**step
        c2_sqrt = (1 - b2**step) ** 0.5
        for p, m, v, lr in zip(self.params, self.m, self.v, self.lrs, strict=True):
            if p.grad is None:
                continue
            g = p.grad
            if self.weight_decay != 0:
                g = g.add(p, alpha=self.weight_decay)
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (v.sqrt() / c2_sqrt).add_(self.eps)
            p.addcdiv_(m, denom, value=-lr / c1)
