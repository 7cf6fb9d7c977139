"""The Python API: the same engine as the CLI.

>>> from verinet import api
>>> model = api.load_model("net.onnx")
>>> prop = api.read_property("prop.vnnlib", model)
>>> result = api.verify(model, prop, timeout=60)
>>> result.status, result.reason, result.counterexample
>>> report = api.certify(model, x, y, eps=0.02, radius=True, timeout=30)
>>> report.samples[0].radius, report.summary().certified_accuracy
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from verinet.certify.result import CertifyReport
from verinet.ir.graph import Network
from verinet.spec.property import Property
from verinet.spec.query import Query
from verinet.types import Box, InputError, ModelError, PropertyError
from verinet.verify.deadline import Deadline
from verinet.verify.portfolio import VerifyOptions
from verinet.verify.portfolio import verify as _verify
from verinet.verify.result import VerificationResult

__all__ = ["Model", "load_model", "load_models", "read_property", "read_query", "verify",
           "certify", "VerifyOptions"]


@dataclass(frozen=True)
class Model:
    """An imported model.  ``network`` takes raw inputs (normalisation, if any, is its
    first layer); ``onnx_eval`` runs the *original* ONNX file on raw inputs."""

    network: Network
    onnx_eval: Callable[[np.ndarray], np.ndarray] | None
    path: str
    notes: tuple[str, ...] = ()
    max_check_error: float = 0.0

    @property
    def n_inputs(self) -> int:
        return self.network.n_inputs

    @property
    def n_outputs(self) -> int:
        return self.network.n_outputs


def _check_file(path: str | os.PathLike[str], what: str) -> Path:
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{what} {p}: is a directory, not a file")
    if not p.is_file():
        raise InputError(f"{what} file not found: {p}")
    if p.stat().st_size == 0:  # a corrupt model (exit 3) or a malformed property (exit 4)
        err = ModelError if what == "model" else PropertyError
        raise err(f"{what} file {p} is empty (0 bytes)")
    return p


def load_model(
    path: str | os.PathLike[str],
    *,
    mean: Sequence[float] | float | None = None,
    std: Sequence[float] | float | None = None,
    check: bool = True,
    input_box: Box | None = None,
) -> Model:
    """Import an ONNX model into the IR, checking it against onnxruntime / onnx's
    reference evaluator.  ``mean``/``std`` prepend ``(x - mean) / std``."""
    from verinet.onnx_import import load_onnx, onnx_evaluator
    from verinet.onnx_import.check import check_equivalence

    p = _check_file(path, "model")
    norm = mean is not None or std is not None
    m = np.asarray(0.0 if mean is None else mean, dtype=np.float64)
    s = np.asarray(1.0 if std is None else std, dtype=np.float64)
    imported = load_onnx(p, check=False)
    if input_box is not None and input_box.dim != imported.network.n_inputs:
        raise InputError(
            f"{p}: the property has {input_box.dim} inputs but the model has "
            f"{imported.network.n_inputs} (dimension mismatch)"
        )
    max_error = float("nan")
    if check:
        # The equivalence check runs on the model as stored (normalised input space).
        box = input_box
        if input_box is not None and norm:
            box = _normalised_box(input_box, m, s)
        max_error, _ = check_equivalence(imported.network, imported.onnx_model,
                                         input_box=box)
    net = imported.network
    raw_eval = onnx_evaluator(imported.onnx_model)
    if norm:
        net = net.with_normalization(m, s)
        shape = net.input_shape

        def onnx_eval(x: np.ndarray) -> np.ndarray:
            xs = np.asarray(x, dtype=np.float64).reshape((-1,) + shape[1:])
            mm = np.broadcast_to(_per_channel(m, shape), xs.shape[1:])
            ss = np.broadcast_to(_per_channel(s, shape), xs.shape[1:])
            return raw_eval(((xs - mm) / ss).reshape(xs.shape[0], -1))
    else:
        onnx_eval = raw_eval
    return Model(net, onnx_eval, str(p), tuple(imported.notes), max_error)


def _per_channel(v: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if v.ndim == 1 and v.size > 1 and len(shape) >= 3 and shape[1] == v.size:
        return v.reshape((v.size,) + (1,) * (len(shape) - 2))
    return v


def _normalised_box(box: Box, mean: np.ndarray, std: np.ndarray) -> Box | None:
    if mean.size > 1 or std.size > 1:
        return None  # per-channel: the check then samples random points only
    return Box((box.lower - float(mean)) / float(std), (box.upper - float(mean)) / float(std))


def read_property(path: str | os.PathLike[str], model: Model | None = None) -> Property:
    """Read a VNN-LIB file; with a model, its dimensions are checked against it.  A 2.0
    query over several networks needs all of them: see :func:`read_query` and
    :func:`load_models`."""
    query = read_query(path)
    if model is None:
        return query.property
    if query.multi:
        raise InputError(
            f"{path} declares {len(query.networks)} networks ({', '.join(query.names)}); "
            "load them together with api.load_models (verinet verify MODEL PROPERTY "
            "--network NAME=PATH)"
        )
    prop = query.property
    if (prop.n_inputs, prop.n_outputs) != (model.n_inputs, model.n_outputs):
        from verinet.spec.vnnlib import read_vnnlib  # raises, naming the declaration

        return read_vnnlib(path, n_inputs=model.n_inputs, n_outputs=model.n_outputs)
    return prop


def read_query(path: str | os.PathLike[str]) -> Query:
    """Read a VNN-LIB file with the networks it declares (:class:`Query`): over several
    networks, its property is over their shared input and concatenated outputs."""
    from verinet.spec.vnnlib import read_query as _read_query

    return _read_query(_check_file(path, "property"))


def load_models(
    query: Query,
    paths: Mapping[str, str | os.PathLike[str]],
    *,
    mean: Sequence[float] | float | None = None,
    std: Sequence[float] | float | None = None,
    check: bool = True,
) -> Model:
    """The composed model of a query over several networks: ``paths`` maps each declared
    network name to its ONNX file; each is imported and checked as by :func:`load_model`,
    and the IR networks are composed over the shared input (outputs concatenated in
    declaration order, :mod:`verinet.ir.compose`), as is the ONNX evaluator."""
    from verinet.multinet import load_composed

    missing = [n for n in query.names if n not in paths]
    if missing:
        raise InputError(f"no ONNX file for network(s) {', '.join(map(repr, missing))}")
    return load_composed(query, paths, mean=mean, std=std, check=check,
                         input_box=query.property.terms[0].box)


def verify(
    model: Model,
    prop: Property,
    *,
    timeout: float = 60.0,
    options: VerifyOptions | None = None,
    deadline: Deadline | None = None,
    threads: int | None = 1,
) -> VerificationResult:
    """Run the portfolio verifier on ``prop`` within ``timeout`` seconds.  ``threads``:
    torch intra-op threads meanwhile (restored afterwards; default 1, as on the command
    line: the small tensors of verification run fastest so; None keeps torch's own)."""
    if not np.isfinite(timeout) or timeout <= 0:
        raise InputError(f"timeout must be a positive number of seconds, got {timeout}")
    if prop.n_inputs != model.n_inputs or prop.n_outputs != model.n_outputs:
        raise InputError(
            f"property has {prop.n_inputs} inputs / {prop.n_outputs} outputs, the model "
            f"{model.n_inputs} / {model.n_outputs}"
        )
    with torch_threads(threads):
        return _verify(model.network, prop, model.onnx_eval, timeout,
                       options or VerifyOptions(), deadline)


def certify(
    model: Model,
    x: np.ndarray,
    y: np.ndarray,
    *,
    eps: float | None = None,
    radius: bool = False,
    timeout: float = 30.0,
    threads: int | None = 1,
    **options: object,
) -> CertifyReport:
    """Per-sample robustness sandwiches for raw inputs ``x`` (N, n) with labels ``y``:
    the verdict at ``eps`` and/or (``radius=True``) the L-inf radius bracket.  Further
    keyword options are those of :class:`verinet.certify.engine.CertifyOptions`;
    ``threads`` as in :func:`verify`."""
    from verinet.certify.engine import CertifyOptions
    from verinet.runs.dataset import certify as _certify

    opts = CertifyOptions(eps=eps, radius=radius, timeout=timeout, **options)  # type: ignore[arg-type]
    with torch_threads(threads):
        return _certify(model.network, model.onnx_eval, np.asarray(x, dtype=np.float64)
                        .reshape(len(y), -1), np.asarray(y), opts, model_name=model.path)


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Torch's intra-op thread count set to ``n`` meanwhile (None: left as it is)."""
    if n is None:
        yield
        return
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputError(f"threads must be an integer >= 1 or None, got {n!r}")
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)
