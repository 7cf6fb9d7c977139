"""Train the models of the robustness study on the digits and export them as ONNX.

Needs scikit-learn for the data set (``pip install scikit-learn``).  Run from the
repository root::

    python3 scripts/train_defended.py                       # all recipes -> benchmarks/models/
    python3 scripts/train_defended.py --recipes normal,pgd-0.1 --epochs 50 --out-dir /tmp/m
    python3 scripts/train_defended.py --list

Recipes (:data:`verinet.train.DEFAULT_RECIPES`): ``normal`` (MLP 32x32, standard
training, the architecture of the bundled example), ``pgd-0.05`` / ``pgd-0.1`` (PGD
adversarial training, 10 steps of ``2.5 eps / 10``, random start), ``fgsm-0.1`` (FGSM
mixed objective, alpha 0.5), ``distill-T1/T10/T20/T100`` (defensive distillation,
teacher and student 32x32 at T, deployed at T = 1) and ``mlp-16``, ``mlp-64x64``,
``mlp-32x32x32`` (standard training, other widths and depths).  Data: scikit-learn's
8x8 digits, pixels / 16, the stratified 75/25 split of ``scripts/train_digits.py``.

Written to ``--out-dir``: ``<recipe>.onnx`` (input ``input`` [batch, 64] in [0, 1],
output ``logits`` [batch, 10]: the deployed model's logits; for distillation the
student's logits at T = 1, i.e. *not* divided by T), ``digits_test.npz`` (the whole test
split: ``x`` float32 (450, 64), ``y`` int64) and ``manifest.json`` (per model: file,
sha256, recipe, description, train/test accuracy, training seconds, and with ``--eval``
the PGD robust accuracy on the first ``--eval-samples`` test samples at each ``--eval``
radius).  Seeded and deterministic (one thread, deterministic torch algorithms): a rerun
writes the same bytes.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from verinet.train import (
    DEFAULT_RECIPES,
    Recipe,
    TrainConfig,
    check_export,
    digits,
    mlp_to_onnx,
    robust_accuracy,
    save_onnx,
    to_network,
    train_recipe,
)

logger = logging.getLogger("train_defended")

ROOT = Path(__file__).resolve().parents[1]
EXPORTED = ("the deployed model's logits (no softmax); distilled models: the student's "
            "logits z at T = 1 (training used softmax(z / T))")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "models")
    ap.add_argument("--recipes", default=None,
                    help="comma-separated recipe names (default: all; see --list)")
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval", default="", metavar="EPS,...",
                    help="PGD robust accuracy at these L-inf radii (e.g. 0.05,0.1)")
    ap.add_argument("--eval-samples", type=int, default=200)
    ap.add_argument("--list", action="store_true", help="list the recipes and exit")
    return ap.parse_args(argv)


def _selected(names: str | None) -> list[Recipe]:
    if names is None:
        return list(DEFAULT_RECIPES)
    known = {r.name: r for r in DEFAULT_RECIPES}
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise SystemExit(f"unknown recipe(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(known)}")
    return [known[n] for n in wanted]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    recipes = _selected(args.recipes)
    if args.list:
        for r in DEFAULT_RECIPES:
            print(f"{r.name:14s} {r.describe()}")
        return 0
    eval_eps = [float(e) for e in args.eval.split(",") if e.strip()]
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    split = digits(seed=args.seed)
    config = TrainConfig(epochs=args.epochs, seed=args.seed)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out_dir / "digits_test.npz", x=split.x_test, y=split.y_test)
    x_ev, y_ev = split.x_test[:args.eval_samples], split.y_test[:args.eval_samples]
    entries = []
    print(f"{'model':14s} {'seconds':>8s} {'train':>6s} {'test':>6s}"
          + "".join(f" {'rob@' + str(e):>9s}" for e in eval_eps))
    for recipe in recipes:
        trained = train_recipe(recipe, split, config)
        model = mlp_to_onnx(trained.model, graph_name=recipe.name,
                            producer="verinet scripts/train_defended.py",
                            doc=f"{recipe.describe()}; digits 8x8, pixels / 16")
        path = save_onnx(model, args.out_dir / f"{recipe.name}.onnx")
        check_export(model, trained.model, split.x_test)
        t0 = time.perf_counter()
        net = to_network(model, recipe.name)
        robust = {str(e): robust_accuracy(net, x_ev, y_ev, e, seed=args.seed) for e in eval_eps}
        entries.append({
            "name": recipe.name, "file": path.name,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "description": recipe.describe(), "recipe": dataclasses.asdict(recipe),
            "train_accuracy": trained.train_accuracy, "test_accuracy": trained.test_accuracy,
            "train_seconds": round(trained.seconds, 2),
            "pgd_robust_accuracy": robust, "eval_seconds": round(time.perf_counter() - t0, 2),
        })
        print(f"{recipe.name:14s} {trained.seconds:8.1f} {trained.train_accuracy:6.3f} "
              f"{trained.test_accuracy:6.3f}" + "".join(f" {v:9.3f}" for v in robust.values()),
              flush=True)
    manifest = {
        "data": {"name": "sklearn digits 8x8, pixels / 16", "split_seed": args.seed,
                 "test_file": "digits_test.npz", "n_train": len(split.y_train),
                 "n_test": len(split.y_test)},
        "config": {"epochs": config.epochs, "batch_size": config.batch_size, "lr": config.lr,
                   "weight_decay": config.weight_decay, "seed": config.seed},
        "exported_output": EXPORTED,
        "eval": {"attack": "verinet PGD, margin loss, 5 restarts x 50 steps",
                 "samples": len(y_ev), "eps": eval_eps},
        "models": entries,
    }
    (args.out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    logger.info("wrote %d models and manifest.json to %s", len(entries), args.out_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
