"""Randomized smoothing on the digits (issue 17, part 2): train a 32x32 MLP with Gaussian
noise sigma = 0.25 (:func:`verinet.train.noise_recipe`), export it to ONNX, then run
``CERTIFY`` with n0 = 100, n = 10,000, alpha = 0.001 on the first 100 test samples.
Target: <= 60 s for training and certification together on the 2-core CPU.

    python3 benchmarks/smoothing.py [--samples 100] [--sigma 0.25] [--n 10000]
                                    [--out-dir benchmarks/results/smoothing]

Prints the certified accuracy at several L2 radii (raw input space, pixels / 16) and
writes ``results.txt`` (the command and git revision first), ``smoothing.json``,
``smoothing.csv`` and the curve ``curve.png`` to ``--out-dir``; the model goes to
``benchmarks/models/noise-<sigma>.onnx`` (git-ignored).  For context, untimed: the base
network's clean accuracy, ``PREDICT``'s accuracy, the bundled example (trained without
noise) under the same ``CERTIFY``, and Salman et al.'s PGD on the smoothed classifier at
each certified radius of the first 20 certified samples (it must never succeed).
Needs scikit-learn for the digits (``pip install scikit-learn``).  Every figure is
probabilistic (confidence 1 - alpha) and about the smoothed classifier, not the base
network.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

START = time.perf_counter()  # before torch and verinet are imported
ROOT = Path(__file__).resolve().parents[1]
RADII = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--samples", type=int, default=100)
    p.add_argument("--sigma", type=float, default=0.25)
    p.add_argument("--n0", type=int, default=100)
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--alpha", type=float, default=0.001)
    p.add_argument("--batch", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--attack-samples", type=int, default=20)
    p.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results" / "smoothing")
    p.add_argument("--models", type=Path, default=ROOT / "benchmarks" / "models")
    return p.parse_args(argv)


def _revision() -> str:
    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=ROOT, text=True,
                              capture_output=True).stdout.strip()

    rev = git("rev-parse", "--short", "HEAD") or "?"
    return rev + (" (with uncommitted changes)" if git("status", "--porcelain") else "")


def _accuracy_line(rep, radii=RADII) -> str:
    r, acc = rep.curve(radii)
    return "  ".join(f"r={v:g}: {100 * a:5.1f}%" for v, a in zip(r, acc, strict=True))


def _attack_check(net, opts, rep, x, k: int) -> tuple[int, int, float]:
    """Salman et al.'s PGD at each certified radius: (successes, attacked, seconds)."""
    from verinet.smoothing import SmoothedClassifier, SmoothedPGD

    g = SmoothedClassifier(net, opts)
    ok = [c for c in rep.certificates if c.correct][:k]
    t = time.perf_counter()
    wins = sum(bool(SmoothedPGD(eps=c.radius, steps=50, m=128)(
        g, x[[c.index]], [c.prediction], indices=[c.index]).success[0]) for c in ok)
    return wins, len(ok), time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.WARNING)
    import torch

    torch.set_num_threads(1)
    from verinet import examples
    from verinet.api import load_model
    from verinet.report import smoothing as report
    from verinet.smoothing import SmoothingOptions, run_smoothing
    from verinet.train import (
        TrainConfig,
        check_export,
        digits,
        mlp_to_onnx,
        noise_recipe,
        save_onnx,
        to_network,
        train_recipe,
    )

    command = " ".join(["python3 benchmarks/smoothing.py",
                        *(sys.argv[1:] if argv is None else argv)])
    t0 = time.perf_counter()
    split = digits()
    recipe = noise_recipe(args.sigma)
    trained = train_recipe(recipe, split, TrainConfig(log_every=0))
    onnx_model = mlp_to_onnx(trained.model, doc=recipe.describe())
    check_export(onnx_model, trained.model, split.x_test)
    model_path = save_onnx(onnx_model, args.models / f"{recipe.name}.onnx")
    net = to_network(onnx_model, name=recipe.name)
    t_train = time.perf_counter() - t0
    x = split.x_test[: args.samples].astype(np.float64)
    y = split.y_test[: args.samples]
    opts = SmoothingOptions(sigma=args.sigma, n0=args.n0, n=args.n, alpha=args.alpha,
                            batch=args.batch, seed=args.seed)
    rep = run_smoothing(net, x, y, opts, model=model_path.name,
                        data=f"digits test split, first {len(y)}")
    total, process = time.perf_counter() - t0, time.perf_counter() - START

    base_acc = float((net.evaluate(x).argmax(axis=1) == y).mean())
    pred = run_smoothing(net, x, y, opts, mode="predict")
    bundled = load_model(examples.model_path()).network
    plain = run_smoothing(bundled, x, y, opts)
    wins, attacked, t_attack = _attack_check(net, opts, rep, x, args.attack_samples)

    args.out_dir.mkdir(parents=True, exist_ok=True)
    report.write_json(rep, args.out_dir / "smoothing.json", RADII)
    report.write_csv(rep, args.out_dir / "smoothing.csv")
    report.plot_curve(rep, args.out_dir / "curve.png")
    radii = [c.radius for c in rep.certificates if c.correct and c.radius is not None]
    from scipy.stats import norm

    cap = args.sigma * float(norm.ppf(args.alpha ** (1 / args.n)))
    epochs = recipe.epochs or TrainConfig().epochs
    lines = [
        f"# {command}",
        f"# git revision {_revision()}",
        f"# {recipe.describe()}; digits ({len(split.y_train)} train / {len(split.y_test)} "
        "test, pixels / 16)",
        f"guarantee: {rep.guarantee.statement}",
        f"CERTIFY n0 {opts.n0}, n {opts.n}, alpha {opts.alpha:g}, batch {opts.batch}, "
        f"seed {opts.seed}; noise not clipped; {len(y)} test samples",
        "",
        f"data + training (recipe {recipe.name}, {epochs} epochs) + ONNX export: "
        f"{t_train:.1f} s",
        f"CERTIFY on {len(y)} samples: {rep.seconds:.1f} s",
        f"total (target <= 60 s): {total:.1f} s ({process:.1f} s with the imports)",
        "",
        f"base network clean accuracy {100 * base_acc:.1f}%; PREDICT (n {opts.n}) accuracy "
        f"{100 * pred.correct / pred.n:.1f}%, abstained {pred.abstained}",
        f"CERTIFY: abstained {rep.abstained}, certified correct {rep.correct}/{rep.n}, "
        f"median certified radius {float(np.median(radii)) if radii else 0:.4f}, "
        f"largest {max(radii) if radii else 0:.4f} (cap sigma Phi^-1(alpha^(1/n)) = "
        f"{cap:.4f})",
        "certified accuracy over the L2 radius (raw inputs):",
        f"  noise-trained sigma {args.sigma:g}:   {_accuracy_line(rep)}",
        f"  bundled (no noise training): {_accuracy_line(plain)}",
        "",
        f"Salman et al. PGD on the smoothed classifier (50 steps, 128 draws each) at the "
        f"certified radius of {attacked} certified samples: {wins} successes "
        f"({t_attack:.1f} s)",
    ]
    text = "\n".join(lines) + "\n"
    (args.out_dir / "results.txt").write_text(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
