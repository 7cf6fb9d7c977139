"""Train the bundled example model: a small ReLU MLP on scikit-learn's 8x8 digits.

Needs scikit-learn for the data set (``pip install scikit-learn``); the verinet package
itself never imports it.  Run from the repository root::

    python3 scripts/train_digits.py            # writes verinet/examples/digits_mlp.onnx
                                               # and verinet/examples/digits_test.npz

The model is 64-32-32-10 (Gemm, ReLU, Gemm, ReLU, Gemm), trained with Adam on a
stratified 75/25 split of ``load_digits`` with the pixels divided by 16 so inputs lie in
[0, 1].  Everything is seeded and runs single-threaded on the CPU with deterministic
torch algorithms, so reruns give the same weights.  The ONNX graph (opset 13, input
``input`` of shape [batch, 64], output ``logits`` of shape [batch, 10]) is written from
the trained weights with ``onnx.helper``; it is checked against torch and onnxruntime and
loaded with ``verinet.api.load_model``.  The first 100 test samples are saved as ``x``
(float32, (100, 64), values k/16) and ``y`` (int64).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

logger = logging.getLogger("train_digits")

ROOT = Path(__file__).resolve().parents[1]
HIDDEN = (32, 32)
N_SAVED = 100


def load_split(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stratified 75/25 train/test split of the digits, pixels scaled to [0, 1]."""
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, stratify=y,
                                              random_state=seed)
    return x_tr, x_te, y_tr, y_te


def make_mlp(n_in: int, n_out: int) -> torch.nn.Sequential:
    layers: list[torch.nn.Module] = []
    width = n_in
    for h in HIDDEN:
        layers += [torch.nn.Linear(width, h), torch.nn.ReLU()]
        width = h
    layers.append(torch.nn.Linear(width, n_out))
    return torch.nn.Sequential(*layers)


def train(x: np.ndarray, y: np.ndarray, *, seed: int, epochs: int) -> torch.nn.Sequential:
    """Adam with mini-batches of 64 and a small weight decay."""
    torch.manual_seed(seed)
    net = make_mlp(x.shape[1], 10)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3, weight_decay=1e-4)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        perm = torch.randperm(len(xt), generator=gen)
        total = 0.0
        for i in range(0, len(xt), 64):
            idx = perm[i:i + 64]
            loss = torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss) * len(idx)
        if (epoch + 1) % 25 == 0:
            logger.info("epoch %d: train loss %.4f", epoch + 1, total / len(xt))
    return net.eval()


def accuracy(net: torch.nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        pred = net(torch.from_numpy(x)).argmax(1).numpy()
    return float((pred == y).mean())


def to_onnx(net: torch.nn.Sequential) -> onnx.ModelProto:
    """The MLP as Gemm(transB=1)/Relu nodes, opset 13, symbolic batch dimension."""
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    nodes, inits = [], []
    prev = "input"
    for k, lin in enumerate(linears):
        w, b = f"fc{k}.weight", f"fc{k}.bias"
        inits += [numpy_helper.from_array(lin.weight.detach().numpy().astype(np.float32), w),
                  numpy_helper.from_array(lin.bias.detach().numpy().astype(np.float32), b)]
        out = "logits" if k == len(linears) - 1 else f"fc{k}"
        nodes.append(helper.make_node("Gemm", [prev, w, b], [out], name=f"fc{k}", transB=1))
        if k < len(linears) - 1:
            nodes.append(helper.make_node("Relu", [out], [f"relu{k}"], name=f"relu{k}"))
            out = f"relu{k}"
        prev = out
    n_in, n_out = linears[0].in_features, linears[-1].out_features
    graph = helper.make_graph(
        nodes, "digits_mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", n_in])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", n_out])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="verinet scripts/train_digits.py")
    model.ir_version = 7  # the IR version of opset 13; readable by older runtimes
    model.doc_string = "ReLU MLP 64-32-32-10 on sklearn digits (pixels / 16)"
    onnx.checker.check_model(model, full_check=True)
    return model


def check_export(path: Path, net: torch.nn.Module, x: np.ndarray) -> None:
    """Compare the ONNX file with torch (onnxruntime) and load it with verinet."""
    import onnxruntime as ort

    from verinet import api

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": x})[0]
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    err = float(np.abs(got - want).max())
    if err > 1e-4:
        raise SystemExit(f"ONNX export differs from torch by {err}")
    model = api.load_model(path)
    logger.info("ONNX matches torch (max error %.2g); verinet loads it: %d inputs, %d outputs",
                err, model.n_inputs, model.n_outputs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", type=Path, default=ROOT / "verinet" / "examples")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=150)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    x_tr, x_te, y_tr, y_te = load_split(args.seed)
    net = train(x_tr, y_tr, seed=args.seed, epochs=args.epochs)
    logger.info("train accuracy %.4f, test accuracy %.4f (%d test samples)",
                accuracy(net, x_tr, y_tr), accuracy(net, x_te, y_te), len(y_te))

    args.out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = args.out_dir / "digits_mlp.onnx"
    onnx.save(to_onnx(net), str(onnx_path))
    data_path = args.out_dir / "digits_test.npz"
    np.savez_compressed(data_path, x=x_te[:N_SAVED], y=y_te[:N_SAVED])
    logger.info("wrote %s and %s (accuracy on the saved %d: %.2f)", onnx_path, data_path,
                N_SAVED, accuracy(net, x_te[:N_SAVED], y_te[:N_SAVED]))
    check_export(onnx_path, net, x_te)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
