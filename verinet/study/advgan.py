"""AdvGAN in the study: one generator per model, its confirmed success rate and its row of
the AdvGAN transfer matrix.

* :func:`study_generator`: a generator for one model, trained against it
  (:func:`verinet.advgan.train_advgan`, an MLP generator at the study's ``eps``, seeded
  from the study seed and the model's position) on the AdvGAN training set, or a trained
  one given by the user (checked against the model's input shape and the study's eps).
* :func:`advgan_success`: the share of the model's correctly classified samples whose
  example is misclassified by the float64 IR and the ONNX model
  (:func:`verinet.advgan.attack_samples`, every success replayed as ``certify`` replays
  a witness).
* :func:`advgan_transfer`: ``T[i, j]``, the share of the samples model ``j`` classifies
  correctly that the examples of model ``i``'s generator make ``j`` misclassify (``j``'s
  float64 IR, ties count: the I-FGSM transfer matrix's rule).  ``T[i, i]`` is the
  IR-checked success rate; the ONNX-confirmed one is the metric of
  :func:`advgan_success`.

Empirical figures, like every attack's.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import numpy as np
import torch

from verinet.advgan import GeneratorConfig, TrainOptions, attack_samples, train_advgan
from verinet.advgan.nets import Generator
from verinet.attacks.advgan import AdvGAN
from verinet.ir.graph import Network
from verinet.study.analysis import fooled_shares
from verinet.study.metrics import correct_mask
from verinet.types import InputError

DOMAIN = (0.0, 1.0)


def study_generator(network: Network, x_train: np.ndarray, y_train: np.ndarray, *,
                    eps: float, epochs: int, seed: int) -> Generator:
    """A generator trained against ``network`` at ``eps`` for ``epochs`` epochs on the raw
    inputs ``x_train`` (labels ``y_train``), on the study's domain [0, 1]."""
    cfg = GeneratorConfig(input_shape=network.input_shape, eps=eps, domain=DOMAIN)
    opts = TrainOptions(epochs=epochs, seed=seed, log_every=0)
    return train_advgan(network, x_train, y_train, config=cfg, options=opts).generator


def check_generator(generator: Generator, network: Network, eps: float, name: str) -> None:
    """Raise InputError unless ``generator`` was made for ``network``'s inputs, the
    study's eps and the domain [0, 1]."""
    c = generator.config
    if c.input_shape != network.input_shape:
        raise InputError(f"the AdvGAN generator of {name} was trained for inputs of shape "
                         f"{c.input_shape}, the model takes {network.input_shape}")
    if not math.isclose(c.eps, eps, rel_tol=1e-9, abs_tol=0.0):
        raise InputError(f"the AdvGAN generator of {name} was trained for eps {c.eps:g}, "
                         f"the study's eps is {eps:g}")
    if c.domain != DOMAIN:
        raise InputError(f"the AdvGAN generator of {name} clips to {c.domain}, the study's "
                         f"domain is {DOMAIN}")


def advgan_success(network: Network, onnx_eval: object | None, generator: Generator,
                   x: np.ndarray, y: np.ndarray) -> float:
    """Confirmed success rate over the correctly classified samples (nan when none is)."""
    rep = attack_samples(network, onnx_eval, AdvGAN(generator=generator), x, y,  # type: ignore[arg-type]
                         domain=DOMAIN)
    return rep.success_rate


def adversarial_examples(generator: Generator, x: np.ndarray) -> np.ndarray:
    """``clip(x + G(x), [0, 1])`` in float64 for the raw inputs ``x`` (N, n)."""
    g = copy.deepcopy(generator).to(torch.float64)
    with torch.no_grad():
        return g.adversarial(torch.tensor(x, dtype=torch.float64)).numpy()


def advgan_transfer(networks: Sequence[Network], generators: Sequence[Generator],
                    x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The AdvGAN transfer matrix (see the module docstring)."""
    if len(networks) != len(generators):
        raise InputError(f"{len(generators)} generators for {len(networks)} models")
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    correct = [correct_mask(net, x, y) for net in networks]
    return fooled_shares(networks, [adversarial_examples(g, x) for g in generators], y,
                         correct)
