"""Corrections to ``onnx.reference`` op implementations used by the equivalence check.

onnx 1.23's ReferenceEvaluator

* runs ``BatchNormalization`` versions 7-13 with batch statistics (training behaviour)
  because it mistakes the always-present ``momentum``/``is_test`` defaults for training;
* runs ``Softmax`` below opset 13 along one axis, whereas those versions coerce the input
  to 2-D at ``axis`` and normalise over all trailing axes jointly.

These replacements implement the inference semantics of every version; onnxruntime
agrees with them.  They are passed to ``ReferenceEvaluator(new_ops=...)``.
"""

from __future__ import annotations

from math import prod

import numpy as np
from onnx import helper
from onnx.reference.op_run import OpRun


def _node_attr(op: OpRun, name: str, default: object) -> object:
    for a in op.onnx_node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


class BatchNormalization(OpRun):
    """Inference-mode batch normalisation (per channel, or per activation for the
    ``spatial=0`` form of opsets 7-8)."""

    op_domain = ""

    def _run(self, x: np.ndarray, scale: np.ndarray, bias: np.ndarray, mean: np.ndarray,
             var: np.ndarray, **_: object) -> tuple[np.ndarray]:
        if _node_attr(self, "training_mode", 0):
            raise NotImplementedError("BatchNormalization training_mode=1")
        eps = float(_node_attr(self, "epsilon", 1e-5))  # type: ignore[arg-type]
        if scale.ndim == x.ndim - 1 and scale.ndim > 1:
            shape: tuple[int, ...] = (1, *scale.shape)
        else:
            shape = (1, -1) + (1,) * (x.ndim - 2)
        s, b, m, v = (np.asarray(a).reshape(shape) for a in (scale, bias, mean, var))
        return ((s * (x - m) / np.sqrt(v + eps) + b).astype(x.dtype),)


class Softmax(OpRun):
    """Softmax with the semantics of the model's opset (2-D coercion before 13)."""

    op_domain = ""

    def _run(self, x: np.ndarray, **_: object) -> tuple[np.ndarray]:
        opset = int(self.run_params["opsets"].get("", 13))
        axis = int(_node_attr(self, "axis", 1 if opset < 13 else -1))  # type: ignore[call-overload]
        axis = axis + x.ndim if axis < 0 else axis
        if opset >= 13:
            return (_softmax(x, axis),)
        flat = x.reshape(prod(x.shape[:axis]), -1)
        return (_softmax(flat, 1).reshape(x.shape),)


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return (e / e.sum(axis=axis, keepdims=True)).astype(x.dtype)


NEW_OPS: list[type[OpRun]] = [BatchNormalization, Softmax]
