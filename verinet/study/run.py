"""A robustness study of several models on one labelled set (:func:`run_study`)."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

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

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StudyModel:
    """A model of the study: its name, IR and (optional) ONNX evaluator for replays."""

    name: str
    network: Network
    onnx_eval: object | None = None


@dataclass(frozen=True)
class StudyReport:
    """Everything :func:`run_study` measured.  ``transfer[i][j]``: see
    :func:`~verinet.study.analysis.transfer_matrix`; ``pareto``: names of the models on
    the clean-accuracy vs ``1 - ifgsm_success`` front; ``robustness``: that robustness
    value per model."""

    data: str
    options: StudyOptions
    models: tuple[ModelMetrics, ...]
    transfer: np.ndarray
    correlations: tuple[Correlation, ...]
    pareto: tuple[str, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.models]

    def robustness(self) -> list[float]:
        return [1.0 - m.ifgsm_success if math.isfinite(m.ifgsm_success) else math.nan
                for m in self.models]


def run_study(models: Sequence[StudyModel], x: np.ndarray, y: np.ndarray,
              options: StudyOptions | None = None, *, data: str = "",
              on_model: Callable[[ModelMetrics], None] | None = None) -> StudyReport:
    """Measure every model (:func:`~verinet.study.metrics.model_metrics`), then the
    transfer matrix, the Pareto front and the rank correlations."""
    options = options or StudyOptions()
    if not models:
        raise InputError("a study needs at least one model")
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise InputError(f"model names must be unique, got {names}")
    dims = {(m.network.n_inputs, m.network.n_outputs) for m in models}
    if len(dims) != 1:
        raise InputError(f"every model must have the same inputs and outputs, got {dims}")
    metrics = []
    for m in models:
        log.info("study: measuring %s", m.name)
        mm = model_metrics(m.name, m.network, x, y, options, m.onnx_eval)
        metrics.append(mm)
        if on_model is not None:
            on_model(mm)
    transfer = transfer_matrix([m.network for m in models], x, y, options.eps,
                               options.ifgsm_steps, options.seed)
    acc = [m.clean_accuracy for m in metrics]
    rob = [1.0 - m.ifgsm_success for m in metrics]
    front = tuple(names[i] for i in pareto_front(acc, rob))
    corr = tuple(rank_correlations(metrics))
    return StudyReport(data, options, tuple(metrics), transfer, corr, front)
