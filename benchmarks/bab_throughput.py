"""Branch-and-bound throughput on DeepPAC's FNN1: how long a complete proof of a robustness
property takes with each ReLU branch-and-bound engine, in one process, one after another.

    python3 benchmarks/bab_throughput.py [--cases 3:0.0402 14:0.031] [--timeout 300] \\
        [--engines relu-bab chain-bab]

Each case ``I:EPS`` is sample ``I`` of ``mnist_100.csv`` (row I+1) and the L-inf ball of
radius ``EPS`` around it in raw [0, 1] pixel space, clipped to [0, 1], with the network's
normalisation (mean 0.1307, std 0.3081) folded in front of it: the property
``verinet certify FNN1 --mean 0.1307 --std 0.3081 --scale 255 --eps EPS`` verifies.  The
attack stage is off (these properties are robust): the time is bounds plus the search.
Engines: ``relu-bab`` is the graph engine's search (what ``verinet verify`` runs),
``chain-bab`` the dense-chain one.  The
files are the shared ones (``../shared``); without them it prints ``skipped`` and exits 0.
"""

from __future__ import annotations

import argparse
import logging
import resource
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / ".." / "shared" / "deeppac"
MODEL = SHARED / "models" / "mnist_FNN_1.onnx"
DATA = SHARED / "extras" / "mnist_100.csv"


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", nargs="+", default=["3:0.0402", "14:0.031"],
                   help="sample:eps pairs (default: 3:0.0402 14:0.031)")
    p.add_argument("--timeout", type=float, default=300.0)
    p.add_argument("--engines", nargs="+", default=["relu-bab", "chain-bab"],
                   choices=("relu-bab", "chain-bab"))
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    if not (MODEL.is_file() and DATA.is_file()):
        print(f"skipped: {MODEL} or {DATA} not found")
        return 0
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from verinet import api
    from verinet.data import load_samples
    from verinet.spec.property import Property
    from verinet.types import Box, linf_ball_bounds
    from verinet.verify.portfolio import VerifyOptions, verify
    from verinet.verify.views import ModelViews

    model = api.load_model(MODEL, mean=[0.1307], std=[0.3081])
    views = ModelViews(model.network)
    cases = [(int(i), float(e)) for i, e in (c.split(":") for c in args.cases)]
    data = load_samples(DATA, n_inputs=model.n_inputs, n_classes=model.n_outputs, scale=255.0,
                        samples=max(i for i, _ in cases) + 1)
    print(f"{'case':>12s} {'engine':>10s} {'verdict':>9s} {'seconds':>8s} {'domains':>8s} "
          f"{'domains/s':>9s}")
    for i, eps in cases:
        x0 = np.asarray(data.x[i], dtype=np.float64)
        prop = Property.robustness(Box(*linf_ball_bounds(x0, eps, 0.0, 1.0)), int(data.y[i]),
                                   model.n_outputs)
        for engine in args.engines:
            opts = replace(VerifyOptions(), attack=False, complete=engine)
            t0 = time.perf_counter()
            res = verify(model.network, prop, model.onnx_eval, args.timeout, opts, views=views)
            dt = time.perf_counter() - t0
            stats = dict(res.stats)
            n = int(stats.get("bab_domains", 0))
            print(f"{i:>5d}:{eps:<6g} {engine:>10s} {res.status.value:>9s} {dt:8.1f} {n:8d} "
                  f"{n / dt:9.0f}", flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory {peak:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
