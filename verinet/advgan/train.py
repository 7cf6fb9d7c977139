"""Training an AdvGAN generator against a frozen verinet network.

The target is the network's IR lowered to torch in float32 (a trailing Softmax stripped,
as the attacks do: :func:`verinet.attacks.base._logit_module`); its parameters are
buffers, so only the generator and the discriminator learn.  Each mini-batch takes one
discriminator step on clean vs adversarial inputs, then one generator step on
``L_adv + alpha L_GAN + beta L_hinge`` (:class:`~verinet.advgan.config.TrainOptions`).
After every epoch the generator is run on the whole training set; the weights of the
epoch that fools the most correctly classified training samples (float32 target, ties:
the later epoch) are the result.

Seeded and reproducible: the generator's, the discriminator's and the batch order's
random numbers come from three generators derived from ``options.seed``; torch's global
random state is never used, so equal inputs give equal weights on the same torch build
and thread count.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from verinet.advgan.config import GeneratorConfig, TrainOptions
from verinet.advgan.losses import (
    adversarial_loss,
    discriminator_loss,
    generator_gan_loss,
    hinge_loss,
)
from verinet.advgan.nets import Discriminator, Generator
from verinet.attacks.base import _logit_module
from verinet.ir.graph import Network
from verinet.optim import Adam
from verinet.types import InputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpochStats:
    """Mean losses of one epoch and the share of correctly classified training samples
    the generator fools after it (float32 target; a training statistic, not confirmed)."""

    epoch: int
    adv: float
    gan: float
    hinge: float
    disc: float
    fooled: float


@dataclass(frozen=True)
class TrainResult:
    """What training did: ``best_epoch`` is the epoch whose generator was kept,
    ``train_success`` its share of fooled correctly classified training samples."""

    config: GeneratorConfig
    options: TrainOptions
    n_train: int
    n_correct: int
    hinge_c: float
    history: tuple[EpochStats, ...]
    best_epoch: int
    train_success: float
    seconds: float


@dataclass(frozen=True)
class Trained:
    """A trained generator (eval mode) and how it was trained."""

    generator: Generator
    result: TrainResult


def check_data(network: Network, x: np.ndarray, y: np.ndarray,
               domain: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Float32 inputs (N, n) and int64 labels (N,) checked against the network."""
    xa = np.asarray(x, dtype=np.float64)
    xa = xa.reshape(len(xa), -1) if xa.ndim > 1 else xa
    ya = np.asarray(y).reshape(-1)
    if xa.ndim != 2 or xa.shape[1] != network.n_inputs:
        raise InputError(f"training inputs have shape {np.shape(x)}, the model expects "
                         f"(N, {network.n_inputs})")
    if len(xa) == 0 or len(ya) != len(xa):
        raise InputError(f"need N >= 1 inputs and as many labels, got {len(xa)} and {len(ya)}")
    if not np.isfinite(xa).all() or (xa < domain[0]).any() or (xa > domain[1]).any():
        raise InputError(f"training inputs must be finite and inside the domain {domain}")
    if not np.issubdtype(ya.dtype, np.integer) or ya.min() < 0 or ya.max() >= network.n_outputs:
        raise InputError(f"labels must be integers in [0, {network.n_outputs})")
    return xa.astype(np.float32), ya.astype(np.int64)


def random_shift(x: Tensor, shape: tuple[int, ...], shift: int, fill: float,
                 gen: torch.Generator) -> Tensor:
    """Every image of the flat batch ``x`` (B, C*H*W) moved by its own random offset in
    ``[-shift, shift]`` pixels along rows and columns, the vacated pixels set to ``fill``."""
    b = x.shape[0]
    _, ch, h, w = shape
    padded = torch.nn.functional.pad(x.reshape(b, ch, h, w), (shift,) * 4, value=fill)
    off = torch.randint(0, 2 * shift + 1, (2, b), generator=gen)
    rows = (off[0][:, None] + torch.arange(h))[:, None, :, None]
    cols = (off[1][:, None] + torch.arange(w))[:, None, None, :]
    out = padded[torch.arange(b)[:, None, None, None], torch.arange(ch)[None, :, None, None],
                 rows, cols]
    return out.reshape(b, -1)


def _fooled(gen: Generator, target: torch.nn.Module, x: Tensor, y: Tensor,
            correct: Tensor) -> float:
    """Share of the correct samples misclassified at ``G``'s examples (float32)."""
    if not bool(correct.any()):
        return 0.0
    with torch.no_grad():
        pred = target(gen.adversarial(x[correct])).argmax(dim=1)
    return float((pred != y[correct]).double().mean())


def train_advgan(network: Network, x: np.ndarray, y: np.ndarray, *,
                 config: GeneratorConfig, options: TrainOptions | None = None) -> Trained:
    """Train a generator for ``config`` against ``network`` on ``x`` (N, n) raw inputs
    in ``config.domain`` with labels ``y`` (N,).  Raises InputError on bad input."""
    opts = options if options is not None else TrainOptions()
    if config.input_shape != network.input_shape:
        raise InputError(f"generator input shape {config.input_shape} differs from the "
                         f"model's {network.input_shape}")
    if network.n_outputs < 2:
        raise InputError(f"AdvGAN needs a classifier with >= 2 outputs, got {network.n_outputs}")
    xa, ya = check_data(network, x, y, config.domain)
    if opts.shift and len(config.input_shape) != 4:
        raise InputError(f"shift augmentation needs image inputs (1, C, H, W), the model's "
                         f"input is {config.input_shape}")
    start = time.perf_counter()
    s_gen, s_disc, s_perm = (int(s) for s in
                             np.random.SeedSequence(opts.seed).generate_state(3))
    gen, disc = Generator(config, s_gen), Discriminator(config, s_disc)
    target = _logit_module(network, torch.float32, "cpu")
    xt, yt = torch.from_numpy(xa), torch.from_numpy(ya)
    with torch.no_grad():
        correct = target(xt).argmax(dim=1) == yt
    c = opts.hinge_bound(config.eps, config.n_inputs)
    opt_g = Adam(gen.parameters(), lr=opts.lr)
    opt_d = Adam(disc.parameters(), lr=opts.lr_disc)
    perm_gen = torch.Generator().manual_seed(s_perm)
    history: list[EpochStats] = []
    best, best_state = -1.0, copy.deepcopy(gen.state_dict())
    best_epoch = 0
    for epoch in range(1, opts.epochs + 1):
        sums = np.zeros(4)
        perm = torch.randperm(len(xt), generator=perm_gen)
        for i in range(0, len(xt), opts.batch_size):
            idx = perm[i:i + opts.batch_size]
            xb = xt[idx]
            if opts.shift:
                xb = random_shift(xb, config.input_shape, opts.shift, config.domain[0],
                                  perm_gen)
            sums += len(idx) * _step(gen, disc, target, xb, yt[idx], opts, c, opt_g, opt_d)
        adv, gan, hng, dsc = sums / len(xt)
        fooled = _fooled(gen, target, xt, yt, correct)
        history.append(EpochStats(epoch, adv, gan, hng, dsc, fooled))
        if fooled >= best:
            best, best_epoch = fooled, epoch
            best_state = copy.deepcopy(gen.state_dict())
        if opts.log_every and (epoch % opts.log_every == 0 or epoch == opts.epochs):
            log.info("epoch %d: adv %.4f gan %.4f hinge %.4f disc %.4f fooled %.3f",
                     epoch, adv, gan, hng, dsc, fooled)
    gen.load_state_dict(best_state)
    gen.eval()
    result = TrainResult(gen.config, opts, len(xa), int(correct.sum()), c, tuple(history),
                         best_epoch, best, time.perf_counter() - start)
    return Trained(gen, result)


def _step(gen: Generator, disc: Discriminator, target: torch.nn.Module, xb: Tensor,
          yb: Tensor, opts: TrainOptions, c: float, opt_g: Adam, opt_d: Adam) -> np.ndarray:
    """One discriminator and one generator step; the batch's (adv, gan, hinge, disc)."""
    h = gen.preactivation(xb)
    delta = gen.bound(h)
    lo, hi = gen.config.domain
    x_adv = (xb + delta).clamp(lo, hi)
    d_loss = discriminator_loss(disc(xb), disc(x_adv.detach()), opts.gan_loss)
    opt_d.descend(d_loss)
    l_adv = adversarial_loss(target(x_adv), yb, opts.kappa)
    l_gan = generator_gan_loss(disc(x_adv), opts.gan_loss)
    l_hinge = hinge_loss(delta, c)
    l_sat = torch.relu(h.abs() - opts.saturation).square().mean()
    opt_g.descend(l_adv + opts.alpha * l_gan + opts.beta * l_hinge + opts.gamma * l_sat)
    return np.array([float(l_adv.detach()), float(l_gan.detach()), float(l_hinge.detach()),
                     float(d_loss.detach())])
