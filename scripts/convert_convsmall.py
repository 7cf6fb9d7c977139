"""Convert an ERAN ConvSmall PyTorch state dict (DeepPAC's CNN1-3) to ONNX.

    python3 scripts/convert_convsmall.py ../shared/deeppac/models/convSmallRELU__Point.pth \\
        /tmp/cnn1.onnx [--data ../shared/deeppac/extras/mnist_100.csv]
    python3 scripts/convert_convsmall.py ../shared/deeppac/models/cifar_convSmallRELU__PGDK.pth \\
        /tmp/cifar_convsmall.onnx --cifar [--data ../shared/deeppac/extras/cifar_100.csv]

ConvSmall (``ConvSmallNetwork`` of the DeepPAC artifact): conv 16@4x4 stride 2 (no
padding), ReLU, conv 32@4x4 stride 2, ReLU, flatten in (channel, row, col) order,
linear 100, ReLU, linear 10.  MNIST input [1, 1, 28, 28] (16x13x13, 32x5x5 = 800), CIFAR
[1, 3, 32, 32] (16x15x15, 32x6x6 = 1152); the input is read off ``conv1.weight`` (1 or 3
channels) and ``--cifar`` must agree with it.  The network expects *normalised* inputs:
pass ``--mean/--std`` to verinet (MNIST 0.1307 / 0.3081; CIFAR per channel
0.4914,0.4822,0.4465 / 0.2023,0.1994,0.2010), the ONNX file holds no normalisation.
DeepPAC's ``cifar_100.csv`` stores pixels (row, col, RGB) interleaved: read it with
``--layout hwc``.  The graph is built node by node with ``onnx.helper`` (opset 13,
float32) and checked against a direct torch evaluation of the state dict on random
inputs before it is written; ``--data CSV`` also compares ONNX (through
``verinet.api.load_model``, normalisation prepended) and torch on the first ``--images``
images of the CSV and prints the clean accuracy.  Nothing is copied into the repository:
write the output somewhere outside it (or to a gitignored path).
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

MNIST_SHAPE, CIFAR_SHAPE = (1, 1, 28, 28), (1, 3, 32, 32)
# the per-dataset input normalisation and the CSV layout of DeepPAC's data files
NORMALISATION = {MNIST_SHAPE: ([0.1307], [0.3081], "chw"),
                 CIFAR_SHAPE: ([0.4914, 0.4822, 0.4465], [0.2023, 0.1994, 0.2010], "hwc")}
KEYS = ("conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "linear1.weight",
        "linear1.bias", "linear2.weight", "linear2.bias")


def load_state(path: Path) -> dict[str, np.ndarray]:
    sd = torch.load(path, map_location="cpu", weights_only=True)
    missing = [k for k in KEYS if k not in sd]
    if missing:
        raise SystemExit(f"{path}: not a ConvSmall state dict (missing {', '.join(missing)})")
    return {k: sd[k].detach().cpu().numpy().astype(np.float32) for k in KEYS}


def input_shape_of(state: dict[str, np.ndarray], cifar: bool | None = None) -> tuple[int, ...]:
    """MNIST or CIFAR input from ``conv1``'s channels; ``cifar`` (when given) must agree,
    and ``linear1`` must take the flattened ``conv2`` output (32 x 5 x 5 or 32 x 6 x 6)."""
    channels = state["conv1.weight"].shape[1]
    if channels not in (1, 3):
        raise SystemExit(f"conv1 takes {channels} channels: neither MNIST (1) nor CIFAR (3)")
    if cifar is not None and cifar != (channels == 3):
        raise SystemExit(f"conv1 takes {channels} channel(s): this is "
                         f"{'a CIFAR' if channels == 3 else 'an MNIST'} ConvSmall, "
                         f"{'drop' if channels == 1 else 'pass'} --cifar")
    shape = CIFAR_SHAPE if channels == 3 else MNIST_SHAPE
    side = ((shape[2] - 4) // 2 + 1 - 4) // 2 + 1  # two 4x4 stride-2 convolutions
    flat = state["conv2.weight"].shape[0] * side * side
    if state["linear1.weight"].shape[1] != flat:
        raise SystemExit(f"linear1 takes {state['linear1.weight'].shape[1]} inputs, the "
                         f"convolutions give {flat} for input {shape}")
    return shape


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


def convert(src: Path, dst: Path, cifar: bool | None = None) -> float:
    """Write the ONNX model; returns the checked maximum deviation from torch.  The input
    shape comes from the state dict (``cifar``, when given, must agree with it)."""
    state = load_state(src)
    shape = input_shape_of(state, cifar)
    model = build_onnx(state, shape)
    err = check(model, state, shape)
    if err > 1e-4:
        raise SystemExit(f"ONNX and torch disagree by {err:.3g}: not written")
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, dst)
    return err


def check_images(src: Path, dst: Path, data: Path, images: int = 100) -> tuple[float, float, int]:
    """``(max |onnx - torch|, clean accuracy, images)`` on the first ``images`` of a
    DeepPAC CSV, read by :func:`verinet.data.load_samples` (scale 255, the dataset's
    layout) and fed to the ONNX file through :func:`verinet.api.load_model` with the
    dataset's normalisation; torch evaluates the state dict on the same inputs."""
    from verinet import api
    from verinet.data import load_samples

    state = load_state(src)
    shape = input_shape_of(state)
    mean, std, layout = NORMALISATION[shape]
    model = api.load_model(dst, mean=mean, std=std)
    s = load_samples(data, n_inputs=model.n_inputs, n_classes=model.n_outputs, scale=255.0,
                     samples=images, layout=layout, input_shape=model.network.input_shape)
    assert model.onnx_eval is not None
    y_onnx = model.onnx_eval(s.x)
    m = np.array(mean).reshape(1, -1, 1, 1)
    sd = np.array(std).reshape(1, -1, 1, 1)
    x = ((s.x.reshape((-1,) + shape[1:]) - m) / sd).astype(np.float32)
    y_torch = torch_reference(state, x)
    err = float(np.max(np.abs(y_onnx - y_torch)))
    return err, float(np.mean(y_onnx.argmax(axis=1) == s.y)), len(s)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("src", type=Path, help="ConvSmall state dict (.pth)")
    p.add_argument("dst", type=Path, help="ONNX file to write")
    p.add_argument("--cifar", action="store_true",
                   help="3x32x32 input (CIFAR ConvSmall); checked against the state dict, "
                   "which decides the input either way")
    p.add_argument("--data", type=Path,
                   help="DeepPAC CSV (mnist_100.csv / cifar_100.csv): compare ONNX and torch "
                   "on its images and print the clean accuracy")
    p.add_argument("--images", type=int, default=100, help="images of --data (100)")
    args = p.parse_args(argv)
    for f in (args.src, args.data):
        if f is not None and not f.is_file():
            print(f"not found: {f}", file=sys.stderr)
            return 2
    err = convert(args.src, args.dst, True if args.cifar else None)
    print(f"wrote {args.dst} (max |onnx - torch| = {err:.2g} on random inputs)")
    if args.data is not None:
        err, acc, n = check_images(args.src, args.dst, args.data, args.images)
        print(f"{args.data.name}, first {n} images: max |onnx - torch| = {err:.2g}, "
              f"clean accuracy {acc:.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
