"""Run the original ONNX model, and check that the IR computes the same function.

:func:`onnx_evaluator` runs a model on flat float inputs with onnxruntime when it is
installed, else with ``onnx.reference.ReferenceEvaluator``.  :func:`check_equivalence`
compares the float64 IR with *both* backends (onnxruntime only if installed) on the input
box centre and random points; the tolerance allows for the float32 arithmetic of the model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from math import prod

import numpy as np
import onnx
from onnx import helper
from onnx.reference import ReferenceEvaluator

from verinet.ir.graph import Network
from verinet.onnx_import.reference_ops import NEW_OPS
from verinet.onnx_import.unbatched import is_unbatched
from verinet.types import Box, InputError, ModelError

logger = logging.getLogger(__name__)

Evaluator = Callable[[np.ndarray], np.ndarray]
RELATIVE_TOLERANCE = 1e-4


@dataclass(frozen=True)
class _InputSpec:
    name: str
    sample_shape: tuple[int, ...]
    dtype: np.dtype
    fixed_batch: bool
    unbatched: bool = False  # the model takes one sample ``sample_shape`` without batch axis


def _input_spec(model: onnx.ModelProto) -> _InputSpec:
    graph = model.graph
    init = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in init]
    if len(inputs) != 1:
        raise ModelError(f"model has {len(inputs)} graph inputs; exactly one is supported")
    tt = inputs[0].type.tensor_type
    dims = list(tt.shape.dim)
    if not dims:
        raise ModelError(f"input '{inputs[0].name}' has no batch axis")
    dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type))
    if is_unbatched(model):
        return _InputSpec(inputs[0].name, (int(dims[0].dim_value),), dtype, True, True)
    sample = tuple(int(d.dim_value) for d in dims[1:])
    if any(s <= 0 for s in sample):
        raise ModelError(f"input '{inputs[0].name}' has a non-static per-sample shape")
    fixed = dims[0].HasField("dim_value") and dims[0].dim_value > 0
    return _InputSpec(inputs[0].name, sample, dtype, fixed)


def _batched(run_one: Callable[[np.ndarray], np.ndarray], spec: _InputSpec) -> Evaluator:
    """Wrap a runner of full-layout arrays into a flat ``(B, n) -> (B, m)`` evaluator."""
    n = prod(spec.sample_shape)

    def run(x: np.ndarray) -> np.ndarray:
        xb = np.asarray(x, dtype=np.float64)
        if xb.ndim != 2 or xb.shape[1] != n or xb.shape[0] == 0:
            raise InputError(f"expected inputs of shape (B>=1, {n}), got {xb.shape}")
        batch = int(xb.shape[0])
        full = xb.reshape((batch, *spec.sample_shape)).astype(spec.dtype)
        if not spec.fixed_batch and batch > 1:
            try:
                return np.asarray(run_one(full), dtype=np.float64).reshape(batch, -1)
            except Exception as e:  # a model may hard-code batch 1 inside: run per sample
                logger.debug("batched ONNX run failed (%s); running sample by sample", e)
        one = (lambda i: full[i]) if spec.unbatched else (lambda i: full[i : i + 1])
        ys = [np.asarray(run_one(one(i)), dtype=np.float64) for i in range(len(full))]
        return np.concatenate([y.reshape(1, -1) for y in ys])

    return run


def ort_evaluator(model: onnx.ModelProto) -> Evaluator:
    """Evaluator backed by onnxruntime (raises ImportError if it is not installed)."""
    import onnxruntime as ort  # optional dependency

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    spec = _input_spec(model)
    out = session.get_outputs()[0].name
    return _batched(lambda x: session.run([out], {spec.name: x})[0], spec)


def reference_evaluator(model: onnx.ModelProto) -> Evaluator:
    """Evaluator backed by onnx's pure-numpy ReferenceEvaluator (with the corrections of
    :mod:`verinet.onnx_import.reference_ops`)."""
    ref = ReferenceEvaluator(model, new_ops=NEW_OPS)
    spec = _input_spec(model)

    def run_one(x: np.ndarray) -> np.ndarray:
        outputs = ref.run(None, {spec.name: x})
        return np.asarray(outputs[0])  # type: ignore[index]  # a list when names are None

    return _batched(run_one, spec)


def onnx_evaluator(model: onnx.ModelProto) -> Evaluator:
    """Flat ``(B, n)`` float inputs -> flat ``(B, m)`` float64 outputs of ``model``.

    Inputs are fed in the model's input dtype and shape (sample by sample when the batch
    dimension is fixed to 1).  Uses onnxruntime if importable, else the reference evaluator.
    """
    try:
        return ort_evaluator(model)
    except ImportError:
        return reference_evaluator(model)


def _backends() -> list[tuple[str, Callable[[onnx.ModelProto], Evaluator]]]:
    backends: list[tuple[str, Callable[[onnx.ModelProto], Evaluator]]] = []
    try:
        import onnxruntime  # noqa: F401  # only probing availability
    except ImportError:
        logger.info("onnxruntime not installed: checking against the reference evaluator only")
    else:
        backends.append(("onnxruntime", ort_evaluator))
    backends.append(("the onnx reference evaluator", reference_evaluator))
    return backends


def check_points(n_inputs: int, n_points: int, seed: int, box: Box | None) -> np.ndarray:
    """The box centre (origin without a box) and ``n_points`` random points: uniform in the
    box, else standard normal halved and clipped to the data range [-1, 1]."""
    rng = np.random.default_rng(seed)
    if box is None:
        pts = np.clip(rng.standard_normal((n_points, n_inputs)) / 2.0, -1.0, 1.0)
        return np.vstack([np.zeros((1, n_inputs)), pts])
    if box.dim != n_inputs:
        raise InputError(f"input box has {box.dim} values, the model expects {n_inputs}")
    pts = rng.uniform(box.lower, box.upper, size=(n_points, n_inputs))
    return np.vstack([box.center.reshape(1, -1), pts])


def check_equivalence(network: Network, model: onnx.ModelProto, *, n_points: int = 16,
                      seed: int = 0, input_box: Box | None = None) -> tuple[float, list[str]]:
    """Compare the IR with onnxruntime and the reference evaluator; return the largest
    absolute error and notes.  Raises ModelError on a disagreement."""
    x = check_points(network.n_inputs, n_points, seed, input_box)
    y_ir = network.evaluate(x)
    worst, notes, ran = 0.0, [], 0
    for backend, make in _backends():
        try:
            with np.errstate(all="ignore"):  # the model may legitimately overflow or divide by 0
                y = make(model)(x)
        except (ModelError, InputError):
            raise
        except Exception as e:  # a backend that cannot run the model is noted, not fatal
            msg = f"{backend} could not run the model: {_first_line(e)}"
            logger.warning(msg)
            notes.append(msg)
            continue
        ran += 1
        worst = max(worst, _compare(y_ir, y, backend))
    if not ran:
        raise ModelError(f"cannot check the import: {'; '.join(notes)}")
    return worst, notes


def _compare(y_ir: np.ndarray, y: np.ndarray, backend: str) -> float:
    if y.shape != y_ir.shape:
        raise ModelError(f"IR and {backend} disagree on the output size: {y_ir.shape[1]} "
                         f"vs {y.shape[1]} values per sample")
    same = (np.isnan(y) & np.isnan(y_ir)) | (np.isinf(y) & (y == y_ir))
    with np.errstate(invalid="ignore"):
        diff = np.where(same, 0.0, np.abs(y - y_ir))
    diff = np.where(np.isnan(diff), np.inf, diff)
    finite = np.abs(y[np.isfinite(y)])
    tol = RELATIVE_TOLERANCE * (1.0 + (float(finite.max()) if finite.size else 0.0))
    err = float(diff.max()) if diff.size else 0.0
    if err > tol:
        bad = int(np.count_nonzero((diff > tol).any(axis=1)))
        raise ModelError(f"IR and {backend} disagree on {bad} of {len(y)} check points: "
                         f"max error {err:.2g} (tolerance {tol:.2g})")
    return err


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
