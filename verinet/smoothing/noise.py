"""Gaussian noise draws and the base classifier's class counts under them.

The base classifier ``f`` is a verinet IR :class:`~verinet.ir.graph.Network` lowered to
torch once (:func:`verinet.ir.torch.torch_network`; a trailing Softmax is stripped, the
argmax is the same).  ``f(x)`` is the first index of the largest logit (torch's argmax
rule), so ties are broken the same way on every run.

Noise lives in the model's **raw input space** (the space of the data file after
``--scale``; a ``--mean/--std`` normalisation is part of the graph, so the noise is added
before it).  Samples are **not clipped** to the input domain by default, as in the
paper: the smoothed classifier is then ``g(x) = argmax_c P(f(x + d) = c)`` with
``d ~ N(0, sigma^2 I)``.  With ``clip = (lo, hi)`` every noisy sample is clipped first;
the certificate then holds for the smoothed version of ``f o clip`` (also a base
classifier, so Theorem 1 applies unchanged), which is a different classifier.

Reproducibility: the noise of one sample comes from numpy's PCG64 seeded with
``SeedSequence([seed, index, phase])`` -- the run's seed, the sample's index in its data
file and the phase (selection, estimation, prediction, attack) -- so a sample's result
depends neither on the order the samples run in nor on which other samples run.
numpy's normal generator fills an array element by element from one stream, so the
draws -- and hence the counts -- are the same whatever the ``batch`` size.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field

import numpy as np
import torch

from verinet.ir.graph import Network
from verinet.ir.passes import strip_softmax
from verinet.ir.torch import torch_network
from verinet.types import InputError

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "float64": torch.float64}


class Phase(enum.IntEnum):
    """Which draws of a sample a stream serves (part of its seed)."""

    SELECTION = 0   # CERTIFY's n0 samples that pick the top class
    ESTIMATION = 1  # CERTIFY's n samples that bound its probability
    PREDICTION = 2  # PREDICT's n samples
    ATTACK = 3      # the noise of the smoothed-classifier attack


def noise_rng(seed: int, index: int, phase: Phase) -> np.random.Generator:
    """The generator of one sample's draws in one phase (see the module doc)."""
    if seed < 0 or index < 0:
        raise InputError(f"seed and sample index must be >= 0, got {seed} and {index}")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, index,
                                                                      int(phase)])))


@dataclass(frozen=True, eq=False)
class BaseClassifier:
    """The hard classifier ``f`` of a network: ``classify(x) -> argmax`` on flat raw
    inputs ``(B, n_inputs)``, evaluated in ``dtype`` ("float32" or "float64")."""

    network: Network
    dtype: str = "float32"
    _module: torch.nn.Module = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise InputError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        logits = strip_softmax(self.network)
        if logits is not self.network:
            log.info("network ends in Softmax: classifying by the logits of '%s'",
                     logits.output_name)
        object.__setattr__(self, "_module", torch_network(logits, DTYPES[self.dtype]))

    @property
    def n_inputs(self) -> int:
        return self.network.n_inputs

    @property
    def n_classes(self) -> int:
        return self.network.n_outputs

    @property
    def module(self) -> torch.nn.Module:
        """The torch lowering of the logits (float ``dtype``, CPU)."""
        return self._module

    def classify(self, x: np.ndarray) -> np.ndarray:
        """Class indices (B,) int64 of flat inputs (B, n_inputs)."""
        with torch.no_grad():
            logits = self._module(torch.as_tensor(x, dtype=DTYPES[self.dtype]))
        return logits.argmax(dim=1).numpy()


def check_point(x: np.ndarray, n_inputs: int) -> np.ndarray:
    """``x`` as a flat finite float64 vector of ``n_inputs`` values."""
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    if a.size != n_inputs:
        raise InputError(f"input has {a.size} values, the model takes {n_inputs}")
    if not np.isfinite(a).all():
        raise InputError("input contains NaN or infinity")
    return a


def class_counts(f: BaseClassifier, x: np.ndarray, *, sigma: float, num: int,
                 rng: np.random.Generator, batch: int,
                 clip: tuple[float, float] | None = None) -> np.ndarray:
    """``SampleUnderNoise``: how often ``f(x + d)`` returns each class over ``num``
    draws ``d ~ N(0, sigma^2 I)`` from ``rng``, evaluated ``batch`` at a time.
    Returns (n_classes,) int64 counts summing to ``num``."""
    counts = np.zeros(f.n_classes, dtype=np.int64)
    left = num
    while left > 0:
        b = min(batch, left)
        xs = x + sigma * rng.standard_normal((b, x.size))
        if clip is not None:
            np.clip(xs, clip[0], clip[1], out=xs)
        counts += np.bincount(f.classify(xs), minlength=f.n_classes)
        left -= b
    return counts
