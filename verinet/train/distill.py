"""Defensive distillation (Papernot et al., S&P 2016).

1. The *teacher* is trained on the hard labels with its softmax at temperature ``T``:
   the data loss is ``CE(softmax(z_teacher(x) / T), y)``.
2. Its *soft labels* are ``softmax(z_teacher(x) / T)`` on the training inputs.
3. The *student* (same architecture by default, initialised from ``seed + 1``) is trained
   on the soft labels at the same temperature: ``-(p * log_softmax(z_student(x) / T)).sum``.
4. It is *deployed at T = 1*: the deployed classifier is ``softmax(z_student(x))``.

So the deployed model is the student's logits ``z_student`` unchanged; what the student
learned to match at ``T`` is ``z_student / T``, which makes the deployed logits about
``T`` times larger than a normally trained model's, and its softmax saturated (gradients
of softmax-based losses vanish: the source of distillation's robustness to such attacks,
not a larger decision margin).  :func:`verinet.train.export.mlp_to_onnx` exports
``z_student / temperature`` for any ``temperature`` asked for, ``z_student`` by default.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from verinet.train.loop import TrainConfig, fit
from verinet.train.models import build_mlp


@dataclass(frozen=True)
class Distilled:
    """The teacher, the student (deploy this one: its logits are the T = 1 model) and T."""

    teacher: torch.nn.Sequential
    student: torch.nn.Sequential
    temperature: float


def soft_labels(teacher: torch.nn.Module, x: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(z_teacher(x) / T)`` (N, m), float32."""
    with torch.no_grad():
        z = teacher(torch.tensor(np.asarray(x), dtype=torch.float32))
        return torch.softmax(z / temperature, dim=1).numpy()


def distill(x: np.ndarray, y: np.ndarray, n_classes: int, *, hidden: tuple[int, ...],
            temperature: float, config: TrainConfig,
            student_hidden: tuple[int, ...] | None = None) -> Distilled:
    """Teacher and student at ``temperature`` on ``x`` (N, n), labels ``y`` (N,)."""
    n_in = int(np.asarray(x).shape[1])
    teacher = build_mlp(n_in, n_classes, hidden, seed=config.seed)
    fit(teacher, x, y, config, temperature=temperature)
    soft = soft_labels(teacher, x, temperature)
    student = build_mlp(n_in, n_classes, student_hidden or hidden, seed=config.seed + 1)
    fit(student, x, soft, config, temperature=temperature)
    return Distilled(teacher, student, temperature)
