"""Our PGD against torchattacks' PGD (and foolbox's LinfPGD where it installs), side by
side in one process: same torch module, images, eps, step count and random restarts.

    python3 benchmarks/attacks_vs_peers.py [--images 100] [--tile 10] [--eps 0.05] [--steps 50]

Reports images per second and success rate per library; every "success" of every library
is re-checked on verinet's float64 IR (a point outside the ball or the [0,1] domain, or
not misclassified, does not count).  torchattacks / foolbox are benchmark-only extras:
``pip install --no-deps torchattacks foolbox eagerpy`` (``--no-deps`` keeps the pinned
torch).  The model is DeepPAC's FNN1 (normalisation folded in as the IR's first layer).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / ".." / "shared" / "deeppac"


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=str(SHARED / "models" / "mnist_FNN_1.onnx"))
    p.add_argument("--data", default=str(SHARED / "extras" / "mnist_100.csv"))
    p.add_argument("--images", type=int, default=100)
    p.add_argument("--tile", type=int, default=10,
                   help="repeat the images this often (a compute-bound batch; default 10)")
    p.add_argument("--eps", type=float, default=0.05)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--repeat", type=int, default=3, help="timing repetitions (best kept)")
    p.add_argument("--threads", type=int, default=1)
    return p.parse_args(argv)


def _check(net, x0: np.ndarray, y: np.ndarray, x: np.ndarray, eps: float) -> np.ndarray:
    """Success as verinet counts it: inside ball and domain, misclassified (ties count)."""
    x = np.asarray(x, dtype=np.float64)
    inside = (np.abs(x - x0).max(axis=1) <= eps + 1e-7) & (x.min(axis=1) >= 0) & (
        x.max(axis=1) <= 1)
    out = np.stack([net.evaluate(v) for v in x])
    own = out[np.arange(len(y)), y]
    out[np.arange(len(y)), y] = -np.inf
    return inside & (out.max(axis=1) >= own)


def _time(fn, repeat: int) -> tuple[float, np.ndarray]:
    best, res = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        res = fn()
        best = min(best, time.perf_counter() - t0)
    return best, res


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    import torch

    torch.set_num_threads(args.threads)
    if not Path(args.model).is_file():
        print(f"skipped: {args.model} not found")
        return 0
    from verinet import api
    from verinet.attacks import PGD
    from verinet.data import load_samples
    from verinet.ir.torch import torch_network

    model = api.load_model(args.model, mean=[0.1307], std=[0.3081])
    net = model.network
    data = load_samples(args.data, n_inputs=net.n_inputs, n_classes=net.n_outputs, scale=255.0,
                        samples=args.images)
    x0, y = np.asarray(data.x), np.asarray(data.y)
    pred = np.array([int(np.argmax(net.evaluate(v))) for v in x0])
    keep = pred == y
    x0, y = np.tile(x0[keep], (args.tile, 1)), np.tile(y[keep], args.tile)
    module = torch_network(net, torch.float32).eval()
    alpha = 2.5 * args.eps / args.steps  # Madry et al.'s rule, used by every library
    rows = []

    for loss in ("ce", "margin"):  # ce: the peers' loss; margin: our default
        ours = PGD(steps=args.steps, restarts=1, rel_stepsize=alpha / args.eps,
                   schedule="constant", random_start=False, loss=loss)
        rows.append((f"verinet PGD {loss}", *_time(
            lambda a=ours: a(net, x0, y, eps=args.eps, rng=np.random.default_rng(0)).x,
            args.repeat)))
    xt = torch.tensor(x0, dtype=torch.float32)
    yt = torch.tensor(y, dtype=torch.long)
    try:
        import torchattacks

        ta = torchattacks.PGD(module, eps=args.eps, alpha=alpha, steps=args.steps,
                              random_start=False)
        rows.append(("torchattacks PGD", *_time(lambda: ta(xt, yt).numpy(), args.repeat)))
    except ImportError:
        print("torchattacks not installed: skipped")
    try:
        import foolbox as fb

        fmodel = fb.PyTorchModel(module, bounds=(0, 1))
        fa = fb.attacks.LinfPGD(rel_stepsize=alpha / args.eps, steps=args.steps,
                                random_start=False)
        rows.append(("foolbox LinfPGD", *_time(
            lambda: fa(fmodel, xt, yt, epsilons=args.eps)[1].numpy(), args.repeat)))
    except ImportError:
        print("foolbox not installed: skipped")
    n = len(y)
    print(f"model {args.model}, {n // args.tile} correctly classified images of {args.images}"
          f" x {args.tile}, "
          f"eps {args.eps}, {args.steps} steps, 1 start (no random start), alpha {alpha:.4g}")
    print(f"{'attack':18s} {'seconds':>8s} {'img/s':>8s} {'success':>8s}")
    base = rows[0][1]
    for name, secs, x in rows:
        ok = _check(net, x0, y, x, args.eps)
        print(f"{name:18s} {secs:8.3f} {n / secs:8.1f} {ok.mean():8.1%}"
              f"   our (ce) throughput / this {secs / base:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
