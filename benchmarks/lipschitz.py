"""Lipschitz radii against CROWN and the exact radius, and the cost of the global bound.

    python3 benchmarks/lipschitz.py [--samples 25] [--timeout 30] [--out FILE]

On DeepPAC's FNN1 (``../shared``; raw MNIST units, normalisation inside the network) and
the bundled digits MLP, for the first ``--samples`` images:

* the sound local Lipschitz radius (:func:`verinet.lipschitz.lipschitz_radius`, searched
  up to the sample's attack upper bound) and the global one;
* the certified CROWN radius (:func:`verinet.certify.crown_radius.crown_radius`, same cap);
* ``verinet certify --radius`` (its sandwich; the radius is *known* where it is exact).

Printed: the chain ``lipschitz <= crown <= exact`` checked wherever the exact radius is
known, a per-sample table of lipschitz / CROWN, its median, and the global bound's cost
(L-inf, L2, L1) per model.  Weng et al. (ICML 2018) report Fast-Lip radii within about
2x of Fast-Lin's; CROWN (adaptive lower slopes) is at least as tight as Fast-Lin, so
lipschitz / CROWN is a conservative stand-in for that ratio.
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / ".." / "shared"
FNN1 = SHARED / "deeppac" / "models" / "mnist_FNN_1.onnx"
MNIST = SHARED / "deeppac" / "extras" / "mnist_100.csv"


def _models(samples: int) -> list[tuple[str, object, np.ndarray, np.ndarray]]:
    from verinet import api
    from verinet.data import load_samples
    from verinet.examples import data_path, model_path

    out = []
    if FNN1.is_file() and MNIST.is_file():
        m = api.load_model(FNN1, mean=[0.1307], std=[0.3081])
        d = load_samples(MNIST, n_inputs=m.n_inputs, n_classes=m.n_outputs, scale=255.0,
                         samples=samples, input_shape=m.network.input_shape)
        out.append(("FNN1", m, d.x, d.y))
    else:
        print(f"FNN1 skipped: {FNN1} not found")
    m = api.load_model(model_path())
    d = np.load(data_path())
    out.append(("digits", m, d["x"][:samples], d["y"][:samples]))
    return out


def _one_model(name: str, model, x: np.ndarray, y: np.ndarray, timeout: float) -> list[str]:
    from verinet.certify.crown_radius import crown_radius
    from verinet.certify.engine import CertifyOptions, certify_sample
    from verinet.lipschitz.global_bound import global_lipschitz
    from verinet.verify.views import ModelViews

    net = model.network
    views = ModelViews(net)
    gm = views.graph
    lines = [f"{name}: {len(x)} samples, {net.n_inputs} inputs"]
    costs = []
    for norm in ("linf", "l2", "l1"):
        t0 = time.perf_counter()
        G = global_lipschitz(gm, norm)
        costs.append(f"{norm} {time.perf_counter() - t0:.3f} s (output constant {G.output:.4g})")
    lines.append("  global bound cost: " + "; ".join(costs))
    lines.append(f"  {'index':>5} {'lipschitz':>10} {'global':>10} {'crown':>10} "
                 f"{'lower':>10} {'upper':>10} {'exact':>5} {'lip/crown':>9} {'lip_s':>6}")
    ratios, chain_ok, chain_known, lip_le_crown = [], 0, 0, 0
    n = net.n_inputs
    dom = (np.zeros(n), np.ones(n))
    for i in range(len(x)):
        rep = certify_sample(net, model.onnx_eval, i, x[i], int(y[i]),
                             CertifyOptions(radius=True, timeout=timeout), views)
        if not rep.correct or rep.lipschitz is None or rep.radius is None:
            lines.append(f"  {i:>5} misclassified or not bounded")
            continue
        lip = rep.lipschitz
        crown = crown_radius(gm, x[i], int(y[i]), rep.radius.upper, dom)
        r = rep.radius
        ratio = lip.radius / crown if crown > 0 else math.inf
        ratios.append(ratio)
        lip_le_crown += lip.radius <= crown
        if rep.exact:
            chain_known += 1
            chain_ok += lip.radius <= crown <= r.upper + 1e-9
        lines.append(f"  {i:>5} {lip.radius:>10.5f} {lip.global_radius:>10.5f} {crown:>10.5f} "
                     f"{r.lower:>10.5f} {r.upper:>10.5f} {'yes' if rep.exact else '':>5} "
                     f"{ratio:>9.3f} {dict(rep.timings)['lipschitz']:>6.3f}")
    if ratios:
        fin = [v for v in ratios if math.isfinite(v)]
        lines.append(f"  lipschitz / crown: median {statistics.median(fin):.3f}, min "
                     f"{min(fin):.3f}, max {max(fin):.3f} over {len(fin)} samples")
        lines.append(f"  lipschitz <= crown on {lip_le_crown}/{len(ratios)}; lipschitz <= crown "
                     f"<= exact on {chain_ok}/{chain_known} samples with a known exact radius")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--samples", type=int, default=25)
    p.add_argument("--timeout", type=float, default=30.0,
                   help="verinet certify's per-sample budget for the exact radius")
    p.add_argument("--out", type=Path, help="write the report here too")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    import torch

    torch.set_num_threads(1)
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                         capture_output=True).stdout.strip()
    lines = [f"# python3 benchmarks/lipschitz.py --samples {args.samples} --timeout "
             f"{args.timeout:g} at {rev or '?'}"]
    for name, model, x, y in _models(args.samples):
        lines += _one_model(name, model, x, y, args.timeout)
        print("\n".join(lines[-3:]), file=sys.stderr, flush=True)
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
