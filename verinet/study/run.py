"""A robustness study of several models on one labelled set (:func:`run_study`)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from verinet.ir.graph import Network
from verinet.study.analysis import (
    Correlation,
    pareto_front,
    rank_correlations,
    transfer_matrix,
)
from verinet.study.metrics import ModelMetrics, StudyOptions, model_metrics
from verinet.types import InputError

if TYPE_CHECKING:
    from verinet.advgan.nets import Generator

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StudyModel:
    """A model of the study: its name, IR, (optional) ONNX evaluator for replays and
    (optional) trained AdvGAN generator, used instead of training one."""

    name: str
    network: Network
    onnx_eval: object | None = None
    generator: Generator | None = None


@dataclass(frozen=True)
class StudyReport:
    """Everything :func:`run_study` measured.  ``transfer[i][j]``: see
    :func:`~verinet.study.analysis.transfer_matrix`; ``pareto``: names of the models on
    the clean-accuracy vs ``1 - ifgsm_success`` front; ``robustness``: that robustness
    value per model; ``advgan_transfer[i][j]``: see
    :func:`~verinet.study.advgan.advgan_transfer` (None without AdvGAN)."""

    data: str
    options: StudyOptions
    models: tuple[ModelMetrics, ...]
    transfer: np.ndarray
    correlations: tuple[Correlation, ...]
    pareto: tuple[str, ...]
    notes: tuple[str, ...] = field(default=())
    advgan_transfer: np.ndarray | None = None

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.models]

    def robustness(self) -> list[float]:
        return [1.0 - m.ifgsm_success if math.isfinite(m.ifgsm_success) else math.nan
                for m in self.models]


def run_study(models: Sequence[StudyModel], x: np.ndarray, y: np.ndarray,
              options: StudyOptions | None = None, *, data: str = "",
              on_model: Callable[[ModelMetrics], None] | None = None,
              advgan_data: tuple[np.ndarray, np.ndarray] | None = None) -> StudyReport:
    """Measure every model (:func:`~verinet.study.metrics.model_metrics`), then the
    transfer matrices, the Pareto front and the rank correlations.

    AdvGAN runs when ``options.advgan_epochs > 0`` or a model comes with a generator:
    a model without one gets a generator trained against it on ``advgan_data`` (raw
    inputs and labels; default: the study's own samples, noted in the report: then its
    success rate is a training-set figure)."""
    options = options or StudyOptions()
    if not models:
        raise InputError("a study needs at least one model")
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise InputError(f"model names must be unique, got {names}")
    dims = {(m.network.n_inputs, m.network.n_outputs) for m in models}
    if len(dims) != 1:
        raise InputError(f"every model must have the same inputs and outputs, got {dims}")
    with_advgan = options.advgan_epochs > 0 or any(m.generator is not None for m in models)
    if with_advgan and options.advgan_epochs == 0 and any(m.generator is None for m in models):
        raise InputError("AdvGAN: give every model a trained generator, or advgan_epochs "
                         "> 0 to train the missing ones")
    notes = []
    if with_advgan and advgan_data is None and any(m.generator is None for m in models):
        notes.append("AdvGAN generators were trained on the study's own samples: their "
                     "success rates are training-set figures")
    metrics, generators = [], []
    for i, m in enumerate(models):
        log.info("study: measuring %s", m.name)
        gen, train_s = _generator(m, i, x, y, options, advgan_data) if with_advgan else (None, 0.0)
        mm = model_metrics(m.name, m.network, x, y, options, m.onnx_eval, generator=gen)
        if train_s:
            mm = replace(mm, seconds=tuple(sorted({**dict(mm.seconds),
                                                   "advgan_train": train_s}.items())))
        metrics.append(mm)
        generators.append(gen)
        if on_model is not None:
            on_model(mm)
    advgan_t = None
    if with_advgan:
        from verinet.study.advgan import advgan_transfer

        advgan_t = advgan_transfer([m.network for m in models], generators, x, y)
    transfer = transfer_matrix([m.network for m in models], x, y, options.eps,
                               options.ifgsm_steps, options.seed)
    acc = [m.clean_accuracy for m in metrics]
    rob = [1.0 - m.ifgsm_success for m in metrics]
    front = tuple(names[i] for i in pareto_front(acc, rob))
    corr = tuple(rank_correlations(metrics))
    return StudyReport(data, options, tuple(metrics), transfer, corr, front, tuple(notes),
                       advgan_t)


def _generator(m: StudyModel, index: int, x: np.ndarray, y: np.ndarray,
               options: StudyOptions,
               advgan_data: tuple[np.ndarray, np.ndarray] | None) -> tuple[Generator, float]:
    """The model's AdvGAN generator (given and checked, or trained) and the training
    seconds (0 when given)."""
    from verinet.study.advgan import check_generator, study_generator

    if m.generator is not None:
        check_generator(m.generator, m.network, options.eps, m.name)
        return m.generator, 0.0
    xt, yt = (x, y) if advgan_data is None else advgan_data
    t0 = time.perf_counter()
    seed = int(np.random.SeedSequence([options.seed, index]).generate_state(1)[0])
    gen = study_generator(m.network, xt, yt, eps=options.eps, epochs=options.advgan_epochs,
                          seed=seed)
    seconds = time.perf_counter() - t0
    log.info("study: AdvGAN generator for %s trained in %.1f s", m.name, seconds)
    return gen, seconds
