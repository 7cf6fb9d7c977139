"""The training loop: seeded mini-batch Adam on any objective, hard or soft targets.

``fit`` is what ``scripts/train_digits.py`` has always done (Adam with the arithmetic of
``torch.optim.Adam``, see :mod:`verinet.optim`; learning rate 3e-3, weight decay
1e-4, batches of 64 from a seeded permutation per epoch), generalised to an objective
(:mod:`verinet.train.objectives`), a temperature ``T`` (the data loss is the
cross-entropy of ``logits / T``) and soft targets (rows of class probabilities, for
defensive distillation).  All randomness comes from one generator seeded with
``config.seed``, so equal inputs give bit-identical weights on the same torch build and
thread count (run with ``torch.use_deterministic_algorithms(True)`` to be sure).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from verinet.optim import Adam
from verinet.train.objectives import DataLoss, Objective, Standard
from verinet.types import InputError

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Optimiser settings; ``log_every`` epochs between loss log lines (0: none)."""

    epochs: int = 150
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0
    log_every: int = 25

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise InputError("epochs and batch_size must be >= 1")
        if not (math.isfinite(self.lr) and self.lr > 0 and self.weight_decay >= 0):
            raise InputError("lr must be > 0 and weight_decay >= 0")


def data_loss(temperature: float = 1.0, *, soft: bool = False) -> DataLoss:
    """Cross-entropy of ``logits / temperature`` against hard labels (N,) or, with
    ``soft``, against probability rows (N, m): ``-(p * log_softmax(z / T)).sum(1).mean()``."""
    if not (math.isfinite(temperature) and temperature > 0):
        raise InputError(f"temperature must be > 0, got {temperature}")

    def hard_ce(logits: Tensor, t: Tensor) -> Tensor:
        return F.cross_entropy(logits / temperature, t)

    def soft_ce(logits: Tensor, t: Tensor) -> Tensor:
        return -(t * F.log_softmax(logits / temperature, dim=1)).sum(dim=1).mean()

    return soft_ce if soft else hard_ce


def fit(model: torch.nn.Module, x: np.ndarray, targets: np.ndarray, config: TrainConfig, *,
        objective: Objective | None = None, temperature: float = 1.0) -> torch.nn.Module:
    """Train ``model`` in place on ``x`` (N, n) and ``targets``: int labels (N,) or
    float class probabilities (N, m); returns it in eval mode."""
    objective = objective if objective is not None else Standard()
    t_np = np.asarray(targets)
    soft = t_np.ndim == 2
    if len(t_np) != len(x):
        raise InputError(f"{len(x)} inputs but {len(t_np)} targets")
    loss_fn = data_loss(temperature, soft=soft)
    xt = torch.tensor(np.asarray(x), dtype=torch.float32)
    tt = torch.tensor(t_np, dtype=torch.float32 if soft else torch.long)
    opt = Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    gen = torch.Generator().manual_seed(config.seed)
    model.train()
    for epoch in range(config.epochs):
        perm = torch.randperm(len(xt), generator=gen)
        total = 0.0
        for i in range(0, len(xt), config.batch_size):
            idx = perm[i:i + config.batch_size]
            loss = objective.loss(model, xt[idx], tt[idx], loss_fn, gen)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        if config.log_every and (epoch + 1) % config.log_every == 0:
            log.info("epoch %d: %s train loss %.4f", epoch + 1, objective.name, total / len(xt))
    return model.eval()


def predict(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    """Logits (N, m) as float32 numpy."""
    with torch.no_grad():
        return model(torch.tensor(np.asarray(x), dtype=torch.float32)).numpy()


def accuracy(model: torch.nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    return float((predict(model, x).argmax(axis=1) == np.asarray(y)).mean())
