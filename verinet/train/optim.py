"""Adam without ``torch.optim``: constructing a ``torch.optim`` optimiser imports
``torch._dynamo`` (5 s on the reference machine, per process).

:class:`Adam` repeats the arithmetic of ``torch.optim.Adam``'s single-tensor CPU path
(L2 weight decay added to the gradient, no amsgrad) operation for operation, so training
gives the same bits as with ``torch.optim.Adam`` (checked by a test and by
``scripts/train_digits.py`` reproducing the bundled model byte for byte).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


class Adam:
    """Adam (Kingma & Ba) over ``params`` with L2 ``weight_decay``."""

    def __init__(self, params: Iterable[torch.nn.Parameter], *, lr: float,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        self.params = list(params)
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        self.t = 0

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        b1, b2 = self.betas
        self.t += 1
        step = float(self.t)
        c1 = 1 - b1**step
        c2_sqrt = (1 - b2**step) ** 0.5
        step_size = self.lr / c1
        for p, m, v in zip(self.params, self.m, self.v, strict=True):
            if p.grad is None:
                continue
            g = p.grad
            if self.weight_decay != 0:
                g = g.add(p, alpha=self.weight_decay)
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (v.sqrt() / c2_sqrt).add_(self.eps)
            p.addcdiv_(m, denom, value=-step_size)
