"""ONNX export of trained MLPs, and the round trip into verinet's IR.

The graph is written node by node with ``onnx.helper`` (no tracing, so the bytes depend
only on the weights and the names): ``Gemm(transB=1)`` and ``Relu`` nodes named
``fc{k}`` / ``relu{k}``, initializers ``fc{k}.weight`` / ``fc{k}.bias`` (float32), input
``input`` of shape ``[batch, n]``, output ``logits`` of shape ``[batch, m]``, opset 13,
IR version 7.  With ``temperature != 1`` the last Gemm carries ``alpha = beta = 1/T``,
so the output is exactly ``z / T`` (same weights; the IR imports alpha/beta).
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from verinet.ir.graph import Network
from verinet.train.models import linear_layers
from verinet.types import InputError, ModelError

log = logging.getLogger(__name__)


def mlp_to_onnx(net: torch.nn.Sequential, *, graph_name: str = "mlp",
                producer: str = "verinet.train", doc: str = "",
                temperature: float = 1.0) -> onnx.ModelProto:
    """The MLP as an ONNX model (see the module docstring), checked by ``onnx.checker``."""
    if not (math.isfinite(temperature) and temperature > 0):
        raise InputError(f"temperature must be > 0, got {temperature}")
    linears = linear_layers(net)
    nodes, inits = [], []
    prev = "input"
    for k, lin in enumerate(linears):
        w, b = f"fc{k}.weight", f"fc{k}.bias"
        inits += [numpy_helper.from_array(lin.weight.detach().numpy().astype(np.float32), w),
                  numpy_helper.from_array(lin.bias.detach().numpy().astype(np.float32), b)]
        last = k == len(linears) - 1
        out = "logits" if last else f"fc{k}"
        attrs: dict[str, Any] = {"transB": 1}
        if last and temperature != 1.0:
            attrs.update(alpha=1 / temperature, beta=1 / temperature)
        nodes.append(helper.make_node("Gemm", [prev, w, b], [out], name=f"fc{k}", **attrs))
        if not last:
            nodes.append(helper.make_node("Relu", [out], [f"relu{k}"], name=f"relu{k}"))
            out = f"relu{k}"
        prev = out
    n_in, n_out = linears[0].in_features, linears[-1].out_features
    graph = helper.make_graph(
        nodes, graph_name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", n_in])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", n_out])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name=producer)
    model.ir_version = 7  # the IR version of opset 13; readable by older runtimes
    model.doc_string = doc
    onnx.checker.check_model(model, full_check=True)
    return model


def save_onnx(model: onnx.ModelProto, path: str | os.PathLike[str]) -> Path:
    """Write ``model`` (its deterministic serialisation) to ``path``; parents created."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(model.SerializeToString())
    return p


def to_network(model: onnx.ModelProto, name: str = "mlp") -> Network:
    """The exported model imported into the IR (checked against onnxruntime or onnx's
    reference evaluator, as :func:`verinet.api.load_model` does)."""
    from verinet.onnx_import.loader import import_model

    return import_model(model, name=name).network


def check_export(model: onnx.ModelProto, net: torch.nn.Module, x: np.ndarray, *,
                 temperature: float = 1.0, tol: float = 1e-4) -> float:
    """Largest difference between the ONNX model's outputs (onnxruntime, else onnx's
    reference evaluator) and ``net(x) / temperature``; ModelError above
    ``tol * (1 + max |net(x) / temperature|)`` (distilled logits are large)."""
    from verinet.onnx_import.check import onnx_evaluator

    got = onnx_evaluator(model)(np.asarray(x, dtype=np.float32))
    with torch.no_grad():
        want = (net(torch.tensor(np.asarray(x), dtype=torch.float32)) / temperature).numpy()
    err = float(np.abs(np.asarray(got, dtype=np.float64) - want).max())
    limit = tol * (1 + float(np.abs(want).max()))
    if not err <= limit:
        raise ModelError(f"ONNX export differs from torch by {err} (tolerance {limit:.3g})")
    log.info("ONNX export matches torch (max error %.2g)", err)
    return err
