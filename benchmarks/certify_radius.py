"""Exact L-inf radii with ``verinet certify --radius``: how many samples close their
sandwich (upper - lower <= tolerance) within the per-sample timeout, how long they take,
how close each minimal-norm attack came to the exact radius, and the peak memory.

    python3 benchmarks/certify_radius.py fnn1 [--samples 25] [--timeout 60] [--csv out.csv] \
        [--search tree|bisection]
    python3 benchmarks/certify_radius.py mnist256x2
    python3 benchmarks/certify_radius.py cnn1|cifar_convsmall [--cache benchmarks/models]
    python3 benchmarks/certify_radius.py custom --model M.onnx --data D.csv --scale 255 \\
        [--mean 0.4914 0.4822 0.4465 --std 0.2023 0.1994 0.2010 --layout hwc] ...

Presets use the shared DeepPAC / VNN-COMP files by relative path (``../shared``); a
preset whose files are absent prints ``skipped: ...`` and exits 0.  ``cnn1`` is
DeepPAC's CNN1 (ERAN ConvSmall, ``convSmallRELU__Point.pth``, MNIST, mean 0.1307 std
0.3081) and ``cifar_convsmall`` the CIFAR ConvSmall (``cifar_convSmallRELU__PGDK.pth``,
``cifar_100.csv`` read ``--layout hwc``, per-channel mean/std); both are PyTorch state
dicts, converted to ONNX by ``scripts/convert_convsmall.py`` on first use into
``--cache`` (default ``benchmarks/models/``, git-ignored) and reused after that.
Each run is one process; peak memory is this process's max RSS.
"""

from __future__ import annotations

import argparse
import logging
import math
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from verinet.certify import RADIUS_SEARCHES

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / ".." / "shared"
MNIST = SHARED / "deeppac" / "extras" / "mnist_100.csv"
CIFAR = SHARED / "deeppac" / "extras" / "cifar_100.csv"
DEEPPAC_MODELS = SHARED / "deeppac" / "models"
CACHE = ROOT / "benchmarks" / "models"  # git-ignored
PRESETS = {
    "fnn1": dict(model=DEEPPAC_MODELS / "mnist_FNN_1.onnx", data=MNIST,
                 scale=255.0, mean=[0.1307], std=[0.3081]),
    "mnist256x2": dict(model=SHARED / "vnncomp" / "onnx" / "mnist-net_256x2.onnx", data=MNIST,
                       scale=255.0, mean=None, std=None),
    # state dicts: converted to ONNX (``cache``/``onnx``) on first use
    "cnn1": dict(model=DEEPPAC_MODELS / "convSmallRELU__Point.pth", onnx="cnn1.onnx",
                 data=MNIST, scale=255.0, mean=[0.1307], std=[0.3081]),
    "cifar_convsmall": dict(model=DEEPPAC_MODELS / "cifar_convSmallRELU__PGDK.pth",
                            onnx="cifar_convsmall.onnx", data=CIFAR, scale=255.0,
                            mean=[0.4914, 0.4822, 0.4465], std=[0.2023, 0.1994, 0.2010],
                            layout="hwc"),
}


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("preset", choices=(*PRESETS, "custom"))
    p.add_argument("--model")
    p.add_argument("--data")
    p.add_argument("--scale", type=float)
    p.add_argument("--mean", type=float, nargs="*")
    p.add_argument("--std", type=float, nargs="*")
    p.add_argument("--layout", choices=("chw", "hwc"),
                   help="order of the stored values (hwc: reordered to the model's NCHW input)")
    p.add_argument("--cache", type=Path, default=CACHE,
                   help="where converted ConvSmall ONNX files go (benchmarks/models)")
    p.add_argument("--samples", type=int, default=25)
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--tolerance", type=float, default=1e-3)
    p.add_argument("--eps", type=float)
    p.add_argument("--no-milp", action="store_true")
    p.add_argument("--search", choices=RADIUS_SEARCHES, default="bisection",
                   help="radius search on high-dimensional models (verinet certify "
                        "--radius-search)")
    p.add_argument("--csv")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def model_file(cfg: dict, cache: Path) -> Path:
    """The ONNX file of a preset: as given, or its state dict converted into ``cache``
    (once; a later run reuses the file)."""
    src = Path(cfg["model"])
    if "onnx" not in cfg:
        return src
    dst = cache / cfg["onnx"]
    if not dst.is_file():
        sys.path.insert(0, str(ROOT / "scripts"))
        from convert_convsmall import convert

        err = convert(src, dst)
        print(f"converted {src.name} -> {dst} (max |onnx - torch| {err:.2g})")
    return dst


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    import torch

    torch.set_num_threads(1)
    from verinet import api
    from verinet.certify.engine import CertifyOptions
    from verinet.data import load_samples
    from verinet.runs.dataset import certify

    cfg = dict(PRESETS.get(args.preset, {}))
    if args.model is not None:
        cfg.pop("onnx", None)  # --model is an ONNX file
    for key in ("model", "data", "scale", "mean", "std", "layout"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    for key in ("model", "data"):
        if cfg.get(key) is None:
            print(f"custom needs --{key}", file=sys.stderr)
            return 2
        if not Path(cfg[key]).is_file():
            print(f"skipped: {cfg[key]} not found")
            return 0
    onnx_path = model_file(cfg, args.cache)
    model = api.load_model(onnx_path, mean=cfg.get("mean"), std=cfg.get("std"))
    data = load_samples(cfg["data"], n_inputs=model.n_inputs, n_classes=model.n_outputs,
                        scale=cfg.get("scale"), samples=args.samples, start=args.start,
                        layout=cfg.get("layout"), input_shape=model.network.input_shape)
    opts = CertifyOptions(eps=args.eps, radius=True, timeout=args.timeout,
                          tolerance=args.tolerance, milp=not args.no_milp,
                          search=args.search)
    t0 = time.monotonic()

    def progress(it, total):
        for k, rep in enumerate(it, 1):
            yield rep
            print(f"  sample {rep.index} ({k}/{total}) done, {time.monotonic() - t0:.0f} s",
                  file=sys.stderr)

    report = certify(model.network, model.onnx_eval, data.x, data.y, opts,
                     model_name=str(onnx_path), data_name=str(cfg["data"]),
                     indices=data.indices, progress=progress)
    _summary(report, args, time.monotonic() - t0)
    if args.csv:
        from verinet.report.certify import write_csv

        write_csv(report, args.csv)
    return 0


def _summary(report, args: argparse.Namespace, wall: float) -> None:
    correct = [s for s in report.samples if s.correct]
    exact = [s for s in correct if s.exact]
    in_time = [s for s in exact if s.seconds <= args.timeout]
    times = [s.seconds for s in correct]
    print(f"model {report.model}")
    print(f"samples {len(report.samples)}, correctly classified {len(correct)}")
    print(f"exact radius (gap <= {args.tolerance:g}) within {args.timeout:g} s: "
          f"{len(in_time)}/{len(report.samples)} (misclassified count as exact radius 0: "
          f"{len(report.samples) - len(correct)})")
    tight = [s for s in correct if s.radius is not None and s.radius.lower > 0
             and s.radius.upper / s.radius.lower <= 1.25]
    print(f"tight (upper / lower <= 1.25): {len(tight)}/{len(correct)} correctly classified")
    loose = [s.radius.upper - s.radius.lower for s in correct
             if s.radius is not None and not s.exact and math.isfinite(s.radius.upper)]
    if loose:
        print(f"median bracket width of the {len(loose)} not exact: "
              f"{statistics.median(loose):.4f}")
    if times:
        print(f"seconds per correct sample: median {statistics.median(times):.1f}, "
              f"max {max(times):.1f}, total {sum(times):.0f} (wall {wall:.0f})")
    ratios: dict[str, list[float]] = {}
    for s in exact:
        assert s.radius is not None
        r = s.radius.upper
        for name, d in s.attacks:
            if math.isfinite(r) and r > 0:
                ratios.setdefault(name, []).append(d / r if math.isfinite(d) else math.inf)
    for name, rs in sorted(ratios.items()):
        med = float(np.median(rs))
        print(f"attack {name}: median distance / exact radius {med:.4f} "
              f"({sum(math.isfinite(r) for r in rs)}/{len(rs)} found one)")
    by = {}
    for s in correct:
        if s.radius is not None:
            by[s.radius.lower_by] = by.get(s.radius.lower_by, 0) + 1
    print("lower bound by: " + ", ".join(f"{k} {v}" for k, v in sorted(by.items())))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory {peak:.0f} MB")
    for s in report.samples:
        r = s.radius
        print(f"  {s.index:3d} {s.status.value:13s} "
              f"[{r.lower:.5f}, {r.upper:.5f}] exact={s.exact!s:5} {s.seconds:5.1f}s "
              f"{r.lower_by}/{r.upper_by}" if r is not None else f"  {s.index:3d} -")


if __name__ == "__main__":
    sys.exit(main())
