"""Public entry points: read an ONNX model, validate it, convert it, check the conversion.

Nothing is version-converted: every converter handles the attribute/input forms of the
model's opset itself (opsets 8 to 21 are tested; 7 and newer ones are accepted with a
warning).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import onnx
from google.protobuf.message import Error as ProtobufError

from verinet.ir.graph import Network
from verinet.onnx_import.check import check_equivalence
from verinet.onnx_import.convert import convert_graph
from verinet.onnx_import.model_info import infer_shapes, input_shape, logits_model, real_inputs
from verinet.onnx_import.unbatched import batched_copy, is_unbatched
from verinet.types import Box, InputError, ModelError

logger = logging.getLogger(__name__)

TESTED_OPSETS = range(8, 22)
MIN_OPSET = 7


@dataclass(frozen=True)
class ImportedModel:
    """An imported network with the ONNX model its output equals.

    ``onnx_model`` is the loaded model, except when a trailing Softmax was stripped: then
    its graph output is redirected to the logits, so that replaying inputs on it gives
    the IR's outputs.  ``max_check_error`` is the largest absolute IR-vs-ONNX difference
    seen by the equivalence check (NaN when the check was skipped).
    """

    network: Network
    onnx_model: onnx.ModelProto
    notes: tuple[str, ...]
    max_check_error: float


def load_onnx(path: str | Path, *, check: bool = True, n_check_points: int = 16,
              seed: int = 0, input_box: Box | None = None) -> ImportedModel:
    """Read, validate and convert the ONNX file at ``path`` (see :func:`import_model`).

    Raises InputError for a missing file and ModelError for an unreadable one.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"ONNX file not found: {p}")
    try:
        model = onnx.load(str(p))
    except (ProtobufError, OSError, ValueError, RuntimeError) as e:
        raise ModelError(f"cannot read ONNX model {p}: {_first_line(e)}") from None
    return import_model(model, check=check, n_check_points=n_check_points, seed=seed,
                        input_box=input_box, name=p.stem)


def import_model(model: onnx.ModelProto, *, check: bool = True, n_check_points: int = 16,
                 seed: int = 0, input_box: Box | None = None,
                 name: str | None = None) -> ImportedModel:
    """Convert ``model`` to the IR.

    Steps: ``onnx.checker``; exactly one non-initializer input and one output; batch axis
    fixed to 1 or symbolic (treated as 1); shape inference; constant folding and per-op
    conversion, collecting every unsupported node into one UnsupportedModelError (a model
    over one unbatched vector ``[n]`` is converted through its batched copy, see
    :mod:`verinet.onnx_import.unbatched`); then,
    with ``check``, comparison of the IR with onnxruntime and the reference evaluator on
    the input box centre and ``n_check_points`` random points (ModelError on mismatch).
    """
    _validate(model)
    opset = _opset(model)
    notes: list[str] = []
    if opset not in TESTED_OPSETS:
        notes.append(f"opset {opset} is outside the tested range 8..21")
        logger.warning("%s", notes[-1])
    label = name or model.graph.name or "network"
    source = model
    if is_unbatched(model):  # an input [n] without batch axis: converted over [1, n] rows
        source = batched_copy(model)
        notes.append(f"unbatched input '{real_inputs(model.graph)[0].name}': imported "
                     "over rows [1, n]")
    shape, shape_notes = input_shape(source)
    inferred, infer_notes = infer_shapes(source)
    conversion = convert_graph(source, opset, shape, inferred, label)
    notes += shape_notes + infer_notes + list(conversion.notes)
    onnx_model = model
    if conversion.output_tensor != model.graph.output[0].name:
        onnx_model = logits_model(model, conversion.output_tensor)
    error = float("nan")
    if check:
        error, check_notes = check_equivalence(
            conversion.network, onnx_model, n_points=n_check_points, seed=seed,
            input_box=input_box,
        )
        notes += check_notes
    for note in notes:
        logger.info("%s: %s", label, note)
    return ImportedModel(conversion.network, onnx_model, tuple(dict.fromkeys(notes)), error)


def _validate(model: onnx.ModelProto) -> None:
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError) as e:
        raise ModelError(f"invalid ONNX model: {_first_line(e)}") from None
    graph = model.graph
    if len(graph.output) != 1:
        raise ModelError(f"model has {len(graph.output)} outputs; exactly one is supported")


def _opset(model: onnx.ModelProto) -> int:
    versions = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    if not versions:
        raise ModelError("model imports no version of the default ONNX operator set")
    opset = int(max(versions))
    if opset < MIN_OPSET:
        raise ModelError(f"opset {opset} is not supported (need 7 or newer; tested 8..21)")
    return opset


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
