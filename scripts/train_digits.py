"""Train the bundled example model: a small ReLU MLP on scikit-learn's 8x8 digits.

Needs scikit-learn for the data set (``pip install scikit-learn``); the verinet package
itself never imports it outside :func:`verinet.train.digits`.  Run from the repository
root::

    python3 scripts/train_digits.py            # writes verinet/examples/digits_mlp.onnx
                                               # and verinet/examples/digits_test.npz

The model is 64-32-32-10 (Gemm, ReLU, Gemm, ReLU, Gemm), trained with Adam on a
stratified 75/25 split of ``load_digits`` with the pixels divided by 16 so inputs lie in
[0, 1].  Everything is seeded and runs single-threaded on the CPU with deterministic
torch algorithms, so reruns give the same weights.  The ONNX graph (opset 13, input
``input`` of shape [batch, 64], output ``logits`` of shape [batch, 10]) is written from
the trained weights with ``onnx.helper`` (:func:`verinet.train.mlp_to_onnx`); it is
checked against torch and onnxruntime and loaded with ``verinet.api.load_model``.  The
first 100 test samples are saved as ``x`` (float32, (100, 64), values k/16) and ``y``
(int64).  The pieces live in :mod:`verinet.train`; ``scripts/train_defended.py`` trains
the defended variants.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import torch

from verinet import api
from verinet.train import (
    TrainConfig,
    accuracy,
    build_mlp,
    check_export,
    digits,
    fit,
    mlp_to_onnx,
    save_onnx,
)

logger = logging.getLogger("train_digits")

ROOT = Path(__file__).resolve().parents[1]
HIDDEN = (32, 32)
N_SAVED = 100


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", type=Path, default=ROOT / "verinet" / "examples")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=150)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    split = digits(seed=args.seed)
    x_tr, y_tr, x_te, y_te = split.x_train, split.y_train, split.x_test, split.y_test
    net = build_mlp(split.n_inputs, split.n_classes, HIDDEN, seed=args.seed)
    fit(net, x_tr, y_tr, TrainConfig(epochs=args.epochs, seed=args.seed))
    logger.info("train accuracy %.4f, test accuracy %.4f (%d test samples)",
                accuracy(net, x_tr, y_tr), accuracy(net, x_te, y_te), len(y_te))

    model = mlp_to_onnx(net, graph_name="digits_mlp", producer="verinet scripts/train_digits.py",
                        doc="ReLU MLP 64-32-32-10 on sklearn digits (pixels / 16)")
    onnx_path = save_onnx(model, args.out_dir / "digits_mlp.onnx")
    data_path = args.out_dir / "digits_test.npz"
    np.savez_compressed(data_path, x=x_te[:N_SAVED], y=y_te[:N_SAVED])
    logger.info("wrote %s and %s (accuracy on the saved %d: %.2f)", onnx_path, data_path,
                N_SAVED, accuracy(net, x_te[:N_SAVED], y_te[:N_SAVED]))
    check_export(model, net, x_te)
    loaded = api.load_model(onnx_path)
    logger.info("verinet loads it: %d inputs, %d outputs", loaded.n_inputs, loaded.n_outputs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
