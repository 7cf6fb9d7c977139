"""Our CLEVER against the Adversarial Robustness Toolbox's ``clever_u``, side by side in
one process: same torch module, images, norm, radius and sampling parameters.

    python3 benchmarks/clever_vs_art.py [--models digits,fnn1] [--images 20] [--norm 2]
        [--radius 1.0] [--batches 50] [--batch-size 100] [--pool-factor 10] [--json FILE]

Both estimate the untargeted score of the predicted class from the same scheme: a pool of
``pool_factor * batch_size`` points uniform in the Lp ball (clipped to [0, 1]), ``batches``
batch maxima bootstrapped from the pool's gradient norms, a reverse-Weibull fit.  ART fits
once (shape init 1, raw data); we fit as the original CLEVER code does (rescaled data,
seven shape inits, KS selection, fall back to the sample maximum).  The random draws
differ (ART uses the global numpy generator), so part of the difference is sampling noise.

Models: the bundled digits MLP (64-32-32-10) and DeepPAC's FNN1 (784-50x3-10, skipped
without ``../shared``), normalisation folded in as the IR's first layer.  Printed per
image: both scores, their relative difference ``|ours - ART| / ART`` and both times; then
the median relative difference and our time over ART's.  ART is a benchmark-only extra:
``pip install --no-deps adversarial-robustness-toolbox`` (``--no-deps`` keeps the pinned
torch).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / ".." / "shared" / "deeppac"
NORMS = {"1": 1.0, "2": 2.0, "inf": math.inf}


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="digits,fnn1", help="comma list of digits, fnn1")
    p.add_argument("--images", type=int, default=20, help="first N images of each data set")
    p.add_argument("--norm", choices=tuple(NORMS), default="2")
    p.add_argument("--radius", type=float, default=1.0, help="sampling radius R")
    p.add_argument("--batches", type=int, default=50, help="Nb bootstrap batches")
    p.add_argument("--batch-size", type=int, default=100, help="Ns points per batch")
    p.add_argument("--pool-factor", type=int, default=10, help="pool of POOL*Ns points")
    p.add_argument("--seed", type=int, default=0, help="image i uses seed + i (both sides)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", help="write the per-image results here")
    return p.parse_args(argv)


def load(name: str, images: int) -> tuple[object, np.ndarray] | None:
    from verinet import api, examples
    from verinet.data import load_samples

    if name == "digits":
        model = api.load_model(examples.model_path())
        data = load_samples(examples.data_path(), n_inputs=64, n_classes=10, samples=images)
    elif name == "fnn1":
        path = SHARED / "models" / "mnist_FNN_1.onnx"
        if not path.is_file():
            print(f"skipped fnn1: {path} not found")
            return None
        model = api.load_model(path, mean=[0.1307], std=[0.3081])
        data = load_samples(SHARED / "extras" / "mnist_100.csv", n_inputs=784, n_classes=10,
                            scale=255.0, samples=images)
    else:
        raise SystemExit(f"unknown model {name!r}")
    return model.network, np.asarray(data.x)


def run_model(name: str, args: argparse.Namespace) -> list[dict[str, object]]:
    import torch
    from art.estimators.classification import PyTorchClassifier
    from art.metrics import clever_u

    from verinet.estimates.clever import CleverOptions, clever_scores
    from verinet.ir.torch import torch_network

    loaded = load(name, args.images)
    if loaded is None:
        return []
    net, x = loaded
    p = NORMS[args.norm]
    module = torch_network(net, torch.float32).eval()
    clf = PyTorchClassifier(model=module, loss=torch.nn.CrossEntropyLoss(),
                            input_shape=(net.n_inputs,), nb_classes=net.n_outputs,
                            clip_values=(0.0, 1.0))
    opts = CleverOptions(nb_batches=args.batches, batch_size=args.batch_size,
                         radius=args.radius, pool_factor=args.pool_factor)
    x32 = x.astype(np.float32)

    def art(i: int) -> float:
        np.random.seed(args.seed + i)
        with warnings.catch_warnings():  # scipy's fit warns on near-identical maxima
            warnings.simplefilter("ignore", RuntimeWarning)
            return float(clever_u(clf, x32[i], args.batches, args.batch_size, args.radius, p,
                                  pool_factor=args.pool_factor, verbose=False))

    def ours(i: int) -> float:
        return clever_scores(net, x[i], norm=p, options=opts,
                             rng=np.random.default_rng(args.seed + i))[0].score

    art(0), ours(0)  # warm-up: first-call overheads are not timed
    rows = []
    for i in range(len(x)):
        t0 = time.perf_counter()
        a = art(i)
        t1 = time.perf_counter()
        o = ours(i)
        t2 = time.perf_counter()
        rows.append({"model": name, "image": i, "art": a, "ours": o,
                     "rel_diff": abs(o - a) / abs(a) if a else math.inf,
                     "capped": a >= args.radius and o >= args.radius,
                     "art_seconds": t1 - t0, "our_seconds": t2 - t1})
    return rows


def report(rows: list[dict[str, object]], args: argparse.Namespace) -> None:
    print(f"CLEVER untargeted, L{args.norm}, R {args.radius}, Nb {args.batches}, "
          f"Ns {args.batch_size}, pool factor {args.pool_factor}")
    print(f"{'model':7s} {'img':>3s} {'ART clever_u':>13s} {'verinet':>10s} {'rel diff':>9s} "
          f"{'ART s':>7s} {'ours s':>7s}")
    for r in rows:
        note = "  (both capped at R)" if r["capped"] else ""
        if r["art"] < 1e-3 * r["ours"]:
            note = "  (ART's single-start Weibull fit diverged: location >> sample max)"
        rel = f"{r['rel_diff']:9.2%}" if r["rel_diff"] < 10 else f"{'>1000%':>9s}"
        print(f"{r['model']:7s} {r['image']:3d} {r['art']:13.5g} {r['ours']:10.5g} "
              f"{rel} {r['art_seconds']:7.2f} {r['our_seconds']:7.2f}{note}")
    for name in dict.fromkeys(r["model"] for r in rows):
        sub = [r for r in rows if r["model"] == name]
        _summary(name, sub)
    if len({r["model"] for r in rows}) > 1:
        _summary("all", rows)


def _summary(name: str, rows: list[dict[str, object]]) -> None:
    rel = np.array([r["rel_diff"] for r in rows], dtype=float)
    free = np.array([r["rel_diff"] for r in rows if not r["capped"]], dtype=float)
    ratio = sum(r["our_seconds"] for r in rows) / sum(r["art_seconds"] for r in rows)
    free_txt = f"{np.median(free):.2%}" if free.size else "n/a"
    print(f"summary {name}: {len(rows)} images, median relative difference "
          f"{np.median(rel):.2%} (target <= 5%; {free_txt} over the {free.size} not capped by "
          f"both), time ratio ours/ART {ratio:.3f} (target <= 0.333)")


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    import torch

    torch.set_num_threads(args.threads)
    logging.getLogger("art").setLevel(logging.ERROR)
    try:
        import art  # noqa: F401
    except ImportError:
        print("skipped: the Adversarial Robustness Toolbox is not installed "
              "(pip install --no-deps adversarial-robustness-toolbox)")
        return 0
    rows = [r for name in args.models.split(",") for r in run_model(name.strip(), args)]
    if not rows:
        return 0
    report(rows, args)
    if args.json:
        Path(args.json).write_text(json.dumps({"settings": vars(args), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
