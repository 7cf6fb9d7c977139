"""Convert an ERAN ConvSmall PyTorch state dict (DeepPAC's CNN1-3) to ONNX.

    python3 scripts/convert_convsmall.py ../shared/deeppac/models/convSmallRELU__Point.pth \\
        /tmp/cnn1.onnx [--cifar]

ConvSmall (``ConvSmallNetwork`` of the DeepPAC artifact): conv 16@4x4 stride 2 (no
padding), ReLU, conv 32@4x4 stride 2, ReLU, flatten in (channel, row, col) order,
linear 100, ReLU, linear 10.  MNIST input [1, 1, 28, 28], CIFAR [1, 3, 32, 32].  The
network expects *normalised* inputs (MNIST mean 0.1307, std 0.3081): pass
``--mean/--std`` to verinet, the ONNX file holds no normalisation.  The graph is built
node by node with ``onnx.helper`` (opset 13, float32) and checked against a direct torch
evaluation of the state dict on random inputs before it is written.  Nothing is copied
into the repository: write the output somewhere outside it (or to a gitignored path).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper

KEYS = ("conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "linear1.weight",
        "linear1.bias", "linear2.weight", "linear2.bias")


def load_state(path: Path) -> dict[str, np.ndarray]:
    sd = torch.load(path, map_location="cpu", weights_only=True)
    missing = [k for k in KEYS if k not in sd]
    if missing:
        raise SystemExit(f"{path}: not a ConvSmall state dict (missing {', '.join(missing)})")
    return {k: sd[k].detach().cpu().numpy().astype(np.float32) for k in KEYS}


def build_onnx(state: dict[str, np.ndarray], input_shape: tuple[int, ...]) -> onnx.ModelProto:
    inits = [numpy_helper.from_array(v, k.replace(".", "_")) for k, v in state.items()]
    flat = state["linear1.weight"].shape[1]
    inits.append(numpy_helper.from_array(np.array([1, flat], dtype=np.int64), "flat_shape"))
    nodes = [
        helper.make_node("Conv", ["x", "conv1_weight", "conv1_bias"], ["c1"],
                         kernel_shape=[4, 4], strides=[2, 2]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "conv2_weight", "conv2_bias"], ["c2"],
                         kernel_shape=[4, 4], strides=[2, 2]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Reshape", ["r2", "flat_shape"], ["f"]),
        helper.make_node("Gemm", ["f", "linear1_weight", "linear1_bias"], ["l1"], transB=1),
        helper.make_node("Relu", ["l1"], ["r3"]),
        helper.make_node("Gemm", ["r3", "linear2_weight", "linear2_bias"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "convsmall",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(input_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="verinet scripts/convert_convsmall.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def torch_reference(state: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """The artifact's ``ConvSmallNetwork.forward`` on the state dict."""
    t = {k: torch.from_numpy(v) for k, v in state.items()}
    with torch.no_grad():
        h = F.relu(F.conv2d(torch.from_numpy(x), t["conv1.weight"], t["conv1.bias"], 2))
        h = F.relu(F.conv2d(h, t["conv2.weight"], t["conv2.bias"], 2))
        h = F.relu(F.linear(h.reshape(h.shape[0], -1), t["linear1.weight"], t["linear1.bias"]))
        return F.linear(h, t["linear2.weight"], t["linear2.bias"]).numpy()


def check(model: onnx.ModelProto, state: dict[str, np.ndarray], input_shape: tuple[int, ...],
          n: int = 16) -> float:
    """Largest |ONNX - torch| over ``n`` random inputs (onnx's reference evaluator)."""
    from onnx.reference import ReferenceEvaluator

    rng = np.random.default_rng(0)
    ev = ReferenceEvaluator(model)
    err = 0.0
    for _ in range(n):
        x = rng.normal(size=input_shape).astype(np.float32)
        y = ev.run(None, {"x": x})[0]
        err = max(err, float(np.max(np.abs(y - torch_reference(state, x)))))
    return err


def convert(src: Path, dst: Path, cifar: bool = False) -> float:
    """Write the ONNX model; returns the checked maximum deviation from torch."""
    shape = (1, 3, 32, 32) if cifar else (1, 1, 28, 28)
    state = load_state(src)
    model = build_onnx(state, shape)
    err = check(model, state, shape)
    if err > 1e-4:
        raise SystemExit(f"ONNX and torch disagree by {err:.3g}: not written")
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, dst)
    return err


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("src", type=Path, help="ConvSmall state dict (.pth)")
    p.add_argument("dst", type=Path, help="ONNX file to write")
    p.add_argument("--cifar", action="store_true", help="3x32x32 input (CIFAR ConvSmall)")
    args = p.parse_args(argv)
    if not args.src.is_file():
        print(f"not found: {args.src}", file=sys.stderr)
        return 2
    err = convert(args.src, args.dst, args.cifar)
    print(f"wrote {args.dst} (max |onnx - torch| = {err:.2g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
