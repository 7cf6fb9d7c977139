"""AdvGAN (Xiao et al., IJCAI 2018) as an attack: a trained generator makes each
adversarial example in one forward pass, ``x = clip(x0 + G(x0))`` with ``|G(x0)| <= eps``,
no gradient steps and no queries.  Training lives in :mod:`verinet.advgan`.

Like every attack the candidates then go through :meth:`Attack.__call__`: clipped to the
L-inf ball ∩ domain and confirmed on the float64 IR.  A generator is made for one eps;
calling the attack with another is an :class:`~verinet.types.InputError`.  It needs a
trained generator, so it is not in :data:`verinet.attacks.REGISTRY` (whose attacks run
with default options).
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from verinet.advgan.nets import Generator
from verinet.attacks.base import Attack, Model
from verinet.ir.graph import Network
from verinet.types import InputError


@dataclass(frozen=True, kw_only=True, eq=False)
class AdvGAN(Attack):
    """One forward pass of ``generator`` per batch (see the module docstring)."""

    name: ClassVar[str] = "advgan"
    minimal: ClassVar[bool] = False

    generator: Generator

    def __post_init__(self) -> None:
        if not isinstance(self.generator, Generator):
            raise InputError(f"advgan needs a trained Generator, got "
                             f"{type(self.generator).__name__}")

    @classmethod
    def load(cls, path: str | os.PathLike[str], network: Network | None = None,
             eps: float | None = None) -> AdvGAN:
        """The attack of a saved generator, checked against ``network``'s input shape and
        ``eps`` when given (:func:`verinet.advgan.checkpoint.load_generator`)."""
        from verinet.advgan.checkpoint import load_generator  # after verinet.advgan.train

        shape = None if network is None else network.input_shape
        return cls(generator=load_generator(path, input_shape=shape, eps=eps).generator)

    @property
    def eps(self) -> float:
        return self.generator.eps

    def run(self, model: Model, x0: Tensor, labels: Tensor, eps: Tensor | None,
            lo: Tensor, hi: Tensor, gen: torch.Generator) -> Tensor:
        assert eps is not None  # __call__ requires eps for fixed-epsilon attacks
        cfg = self.generator.config
        if x0.shape[1] != cfg.n_inputs:
            raise InputError(f"advgan: the generator takes {cfg.n_inputs} inputs, the model "
                             f"{x0.shape[1]}")
        g = self.generator
        if next(g.parameters()).dtype != x0.dtype or x0.device.type != "cpu":
            g = copy.deepcopy(g).to(device=x0.device, dtype=x0.dtype)
        with torch.inference_mode():
            far = float((eps - cfg.eps).abs().max())  # one reduction, one sync
            if far > 1e-6 * cfg.eps:
                bad = float(eps[(eps - cfg.eps).abs().argmax()])
                raise InputError(f"advgan: the generator was trained for eps {cfg.eps:g}, the "
                                 f"attack was asked for eps {bad:g}")
            # no clamp here: the final call clips every candidate to the ball ∩ domain
            return g(x0).add_(x0)
