"""The reproduction study of issue 5: do the seed papers' findings hold on models the
project trains itself?

Trains (or reuses) the models of :data:`verinet.train.DEFAULT_RECIPES` on the digits
(normal; PGD adversarial training at eps 0.05 and 0.1; FGSM mixed objective; defensive
distillation at T = 1, 10, 20, 100; three other widths/depths) with
``scripts/train_defended.py`` into ``benchmarks/models/`` and runs ``verinet study`` on
them (I-FGSM / C&W, CLEVER, ROBY, certified radii with a per-sample timeout, transfer
matrix, Pareto front, rank correlations).  As a benchmark-only extra it also measures the
I-FGSM success rate with the cross-entropy loss next to the study's margin loss: the
difference is what defensive distillation does to gradient attacks.

    python3 benchmarks/study.py [--samples 100] [--eps 0.1] [--certify-timeout 2]
                                [--out-dir benchmarks/results/study] [--retrain]

Writes ``study.json``, ``study.csv``, ``study.png`` and ``findings.txt`` to ``--out-dir``.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", type=Path, default=ROOT / "benchmarks" / "models")
    p.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results" / "study")
    p.add_argument("--samples", type=int, default=100)
    p.add_argument("--eps", type=float, default=0.1)
    p.add_argument("--certify-timeout", type=float, default=2.0)
    p.add_argument("--pac", action="store_true", help="also DeepPAC radii (slow: ~15 s a sample)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--retrain", action="store_true")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def _train(models: Path, retrain: bool) -> dict:
    manifest = models / "manifest.json"
    if retrain or not manifest.is_file():
        subprocess.run([sys.executable, str(ROOT / "scripts" / "train_defended.py"),
                        "--out-dir", str(models)], check=True)
    return json.loads(manifest.read_text())


def _ce_success(network, x, y, eps: float, steps: int, seed: int) -> float:
    """I-FGSM with the cross-entropy loss (the loss of the distillation paper's era)."""
    from verinet.attacks import BIM
    from verinet.study.metrics import correct_mask

    ok = correct_mask(network, x, y)
    res = BIM(steps=steps, rel_stepsize=1.25 / steps, loss="ce")(
        network, x[ok], y[ok], eps=eps, rng=np.random.default_rng(seed))
    return float(res.success.mean())


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    import torch

    torch.set_num_threads(1)
    from verinet import api
    from verinet.report.study import format_table, plot_study, write_csv, write_json
    from verinet.study import StudyModel, StudyOptions, run_study

    manifest = _train(args.models, args.retrain)
    names = [m["name"] for m in manifest["models"]]
    data = np.load(args.models / "digits_test.npz")
    x = data["x"][: args.samples].astype(np.float64)
    y = data["y"][: args.samples].astype(np.int64)
    models = []
    for n in names:
        m = api.load_model(str(args.models / f"{n}.onnx"))
        models.append(StudyModel(n, m.network, m.onnx_eval))
    opts = StudyOptions(eps=args.eps, certify_timeout=args.certify_timeout, pac=args.pac,
                        seed=args.seed)
    t0 = time.monotonic()
    rep = run_study(models, x, y, opts, data=f"digits test split, first {len(y)}",
                    on_model=lambda m: print(f"  {m.name} done, {time.monotonic() - t0:.0f} s",
                                             file=sys.stderr))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    write_json(rep, args.out_dir / "study.json")
    write_csv(rep, args.out_dir / "study.csv")
    plot_study(rep, args.out_dir / "study.png")
    ce = {m.name: _ce_success(m.network, x, y, args.eps, opts.ifgsm_steps, args.seed)
          for m in models}
    lines = [format_table(rep), "",
             f"I-FGSM success at eps {args.eps:g}: margin loss (the study's) vs cross-entropy",
             f"{'model':16s} {'margin':>8s} {'CE':>8s}"]
    for m in rep.models:
        lines.append(f"{m.name:16s} {100 * m.ifgsm_success:7.1f}% {100 * ce[m.name]:7.1f}%")
    lines.append(f"\n{len(models)} models, {len(y)} samples, "
                 f"{time.monotonic() - t0:.0f} s (study + CE attacks)")
    text = "\n".join(lines)
    (args.out_dir / "findings.txt").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
