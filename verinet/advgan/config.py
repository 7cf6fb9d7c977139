"""Typed settings of AdvGAN: the generator's shape (:class:`GeneratorConfig`, stored with
every saved generator) and the training options (:class:`TrainOptions`).

Both are frozen dataclasses that check their values on construction and raise a one-line
:class:`~verinet.types.InputError`; the CLI only builds them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from math import prod
from typing import Any

from verinet.types import InputError

KINDS = ("mlp", "conv")
GAN_LOSSES = ("lsgan", "bce")


def _finite(name: str, v: float, *, positive: bool = False) -> None:
    if not math.isfinite(v) or v < 0 or (positive and v == 0):
        raise InputError(f"{name} must be {'> 0' if positive else '>= 0'} and finite, got {v}")


@dataclass(frozen=True, kw_only=True)
class GeneratorConfig:
    """What a generator is: the target's ``input_shape`` (batch axis 1 first, as
    :attr:`verinet.ir.graph.Network.input_shape`), the L-inf bound ``eps`` (raw input
    space), the input ``domain`` ``(lo, hi)`` the examples are clipped to, the
    architecture ``kind`` (``"mlp"`` on the flat input; ``"conv"`` for image-shaped
    inputs ``(1, C, H, W)`` with ``H, W >= 4``) and its ``width`` (hidden units of the MLP,
    base channels of the conv net)."""

    input_shape: tuple[int, ...]
    eps: float
    kind: str = "mlp"
    width: int = 0  # 0: the kind's default (see resolved())
    domain: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self) -> None:
        shape = tuple(int(s) for s in self.input_shape)
        object.__setattr__(self, "input_shape", shape)
        object.__setattr__(self, "domain", tuple(float(v) for v in self.domain))
        object.__setattr__(self, "eps", float(self.eps))
        if len(shape) < 2 or shape[0] != 1 or any(s < 1 for s in shape):
            raise InputError(f"input_shape must be (1, ...) with positive sizes, got {shape}")
        _finite("eps", self.eps, positive=True)
        lo, hi = self.domain
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise InputError(f"domain must be finite (lo, hi) with lo < hi, got {self.domain}")
        if self.kind not in KINDS:
            raise InputError(f"generator kind must be one of {', '.join(KINDS)}, "
                             f"got {self.kind!r}")
        if self.kind == "conv" and not image_shaped(shape):
            raise InputError(f"a conv generator needs an image input (1, C, H, W) with H, W "
                             f">= 4; the model's input is {shape} (use kind mlp)")
        if self.width < 0:
            raise InputError(f"width must be >= 0 (0: default), got {self.width}")

    @property
    def n_inputs(self) -> int:
        return prod(self.input_shape[1:])

    def resolved(self) -> GeneratorConfig:
        """This config with ``width`` 0 replaced by the kind's default (MLP: 256 hidden
        units, at most 4 n; conv: 16 channels)."""
        if self.width:
            return self
        width = min(256, 4 * self.n_inputs) if self.kind == "mlp" else 16
        return GeneratorConfig(input_shape=self.input_shape, eps=self.eps, kind=self.kind,
                               width=width, domain=self.domain)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any) -> GeneratorConfig:
        """Rebuild from :meth:`as_dict` output; unknown or missing keys are refused."""
        if not isinstance(d, dict):
            raise InputError(f"generator config must be a mapping, got {type(d).__name__}")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise InputError(f"unknown generator config key(s): {', '.join(map(str, unknown))}")
        try:
            return cls(**d)
        except TypeError as e:
            raise InputError(f"bad generator config: {e}") from None


def image_shaped(shape: tuple[int, ...]) -> bool:
    """``(1, C, H, W)`` with ``H, W >= 4``: a conv generator fits."""
    return len(shape) == 4 and shape[2] >= 4 and shape[3] >= 4


def default_kind(shape: tuple[int, ...]) -> str:
    """``"conv"`` for image-shaped inputs, else ``"mlp"``."""
    return "conv" if image_shaped(shape) else "mlp"


@dataclass(frozen=True, kw_only=True)
class TrainOptions:
    """AdvGAN training (Xiao et al. 2018, Eq. 4): minimise over the generator G

    ``L = L_adv + alpha * L_GAN + beta * L_hinge``

    with ``L_adv = mean max(f_y(x') - max_{j != y} f_j(x'), -kappa)`` on the target's
    logits at ``x' = clip(x + G(x))`` (untargeted C&W loss), ``L_hinge = mean max(0,
    ||G(x)||_2 - c)`` and ``L_GAN`` the generator's realism loss against the
    discriminator D (``gan_loss``: ``"lsgan"``, least squares, ``(D(x') - 1)^2`` for G
    and ``(D(x) - 1)^2 + D(x')^2`` for D; or ``"bce"``, the original GAN form).
    ``c`` is an L2 norm in raw input space; None: ``c_share * eps * sqrt(n)`` (the share
    of the largest L2 norm an L-inf perturbation of ``eps`` can have).  Adam with
    learning rates ``lr`` (G) and ``lr_disc`` (D), batches of ``batch_size`` from a
    seeded permutation per epoch; ``shift`` > 0 (image inputs only) moves every training
    image of a batch by a random whole number of pixels in ``[-shift, shift]`` along each
    axis (padding with the domain's lower end: data augmentation for small training sets,
    not in the paper).  ``gamma`` > 0 adds ``gamma * mean(max(0, |h| - saturation)^2)``
    on the generator's pre-tanh output ``h`` (not in the paper either): without it ``h``
    grows until tanh saturates, its gradient vanishes and the generator freezes into an
    input-independent perturbation (measured: a tiny net stuck at 48% of its training
    points fooled with 99.9% of ``|h| > 3``; 78% with ``gamma = 0.1``).  ``kappa`` 20
    by default: on FNN1 at eps 0.3 (trained on 50 MNIST images, tested on 50 others,
    ``benchmarks/advgan.py``) it fooled 49, 49 and 48 of the 49 held-out images over three
    seeds, against 44 at ``kappa = 5``: a larger margin on the training images carries over
    to unseen ones.  ``log_every`` epochs between log lines (0: none).
    """

    epochs: int = 60
    batch_size: int = 64
    lr: float = 1e-3
    lr_disc: float = 1e-3
    alpha: float = 0.1
    beta: float = 1.0
    c: float | None = None
    c_share: float = 0.5
    kappa: float = 20.0
    gan_loss: str = "lsgan"
    shift: int = 0
    gamma: float = 0.1
    saturation: float = 2.0
    seed: int = 0
    log_every: int = 10

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise InputError(f"epochs and batch size must be >= 1, got {self.epochs} and "
                             f"{self.batch_size}")
        for name in ("lr", "lr_disc"):
            _finite(name, getattr(self, name), positive=True)
        for name in ("alpha", "beta", "kappa", "c_share", "gamma"):
            _finite(name, getattr(self, name))
        if self.c is not None:
            _finite("c", self.c)
        if self.gan_loss not in GAN_LOSSES:
            raise InputError(f"gan_loss must be one of {', '.join(GAN_LOSSES)}, "
                             f"got {self.gan_loss!r}")
        if self.shift < 0:
            raise InputError(f"shift must be >= 0, got {self.shift}")
        _finite("saturation", self.saturation, positive=True)
        if self.log_every < 0:
            raise InputError(f"log_every must be >= 0, got {self.log_every}")

    def hinge_bound(self, eps: float, n_inputs: int) -> float:
        """The hinge's ``c`` for a generator of ``eps`` on ``n_inputs`` inputs."""
        return self.c if self.c is not None else self.c_share * eps * math.sqrt(n_inputs)
