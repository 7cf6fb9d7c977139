"""Minimal-distortion attacks side by side, in L1, L2 and L-inf, on one model.

    python3 benchmarks/attack_norms.py [--model M.onnx --data D.npz] [--samples 50]
        [--attacks pgd,fmn,cw-l2,ead,lbfgs,boundary] [--threads 1]

Default: the bundled digits MLP and its test samples (correctly classified ones only).
Per attack: success rate, median L1 / L2 / L-inf distance of its witnesses over the
samples every attack fooled, the norm it minimises (``AttackResult.norm``) and seconds.
``pgd`` is a per-sample bisection on eps (8 steps of PGD 50 x 5 restarts), an L-inf
baseline.  Every witness is confirmed on the float64 IR by ``Attack.__call__``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from verinet import api, examples
from verinet.attacks import PGD, REGISTRY
from verinet.ir.graph import Network


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=str(examples.model_path()))
    p.add_argument("--data", default=str(examples.data_path()))
    p.add_argument("--samples", type=int, default=50)
    p.add_argument("--attacks", default="pgd,fmn,cw-l2,ead,lbfgs,boundary")
    p.add_argument("--threads", type=int, default=1)
    return p.parse_args(argv)


def pgd_bisection(net: Network, x0: np.ndarray, y: np.ndarray, steps: int = 8) -> np.ndarray:
    """Per-sample closest PGD witness by bisection on eps (x0 where none was found)."""
    lo, hi = np.zeros(len(x0)), np.ones(len(x0))
    best = x0.copy()
    found = np.zeros(len(x0), dtype=bool)
    for k in range(steps):
        mid = np.where(found, (lo + hi) / 2, hi) if k else hi
        res = PGD(steps=50, restarts=5)(net, x0, y, eps=mid, rng=np.random.default_rng(k))
        best = np.where(res.success[:, None], res.x, best)
        found |= res.success
        hi = np.where(res.success, res.distance, hi)
        lo = np.where(res.success, lo, mid)
    return np.where(found[:, None], best, np.nan)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    net = api.load_model(args.model).network
    data = np.load(args.data)
    x0 = data["x"].reshape(len(data["y"]), -1).astype(np.float64)[:args.samples]
    y = data["y"].astype(np.int64)[:args.samples]
    keep = np.argmax(net.evaluate(x0), axis=1) == y
    x0, y = x0[keep], y[keep]
    print(f"{args.model}: {len(y)} correctly classified samples")
    points, rows = {}, []
    for name in args.attacks.split(","):
        t0 = time.perf_counter()
        if name == "pgd":
            x, norm = pgd_bisection(net, x0, y), "linf"
        else:
            res = REGISTRY[name]()(net, x0, y, eps=None, rng=np.random.default_rng(0))
            x, norm = np.where(res.success[:, None], res.x, np.nan), res.norm
        points[name] = x
        rows.append((name, norm, time.perf_counter() - t0))
    fooled = np.all([np.isfinite(p).all(axis=1) for p in points.values()], axis=0)
    print(f"fooled by every attack: {int(fooled.sum())}/{len(y)}")
    print(f"{'attack':10s} {'norm':5s} {'success':>8s} {'L1':>8s} {'L2':>8s} {'Linf':>8s} "
          f"{'seconds':>8s}")
    for name, norm, seconds in rows:
        d = points[name][fooled] - x0[fooled]
        med = [np.median(np.abs(d).sum(1)), np.median(np.linalg.norm(d, axis=1)),
               np.median(np.abs(d).max(1))]
        ok = float(np.isfinite(points[name]).all(axis=1).mean())
        print(f"{name:10s} {norm:5s} {ok:8.2f} {med[0]:8.4f} {med[1]:8.4f} {med[2]:8.4f} "
              f"{seconds:8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
