"""DeepPAC reproduction: maximum PAC radii on FNN1 / CNN1 (first 25 MNIST training images)
against the published ones (``../shared/deeppac/mnist_rmax.csv``), time per verdict and
per radius search, and -- with ``--sandwich`` -- the certify sandwich of the same images:
no PAC "unsafe" below the certified lower bound, share of PAC radii inside it.

    python3 benchmarks/deeppac.py fnn1 [--images 25] [--sandwich --timeout 60] [--csv out.csv]
    python3 benchmarks/deeppac.py cnn1 [--images 25] [--sandwich]

CNN1 (ERAN ConvSmall, a PyTorch state dict) is converted to ONNX on demand by
``scripts/convert_convsmall.py`` into a temporary directory (``--cache DIR`` keeps it).
Defaults are the paper's (epsilon 0.01, eta 0.001, K1 2000, K2 8000, seed 0, grid 1/255);
``--phase1 lp`` runs the artifact's Phase 1 LP (minutes per verdict).  Torch runs on one
thread.  Every image is searched in this process; the timings include the contention of
whatever else runs on the machine.
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / ".." / "shared" / "deeppac"
MNIST = SHARED / "extras" / "mnist_100.csv"
RMAX = SHARED / "mnist_rmax.csv"
MODELS = {"fnn1": ("FNN1", SHARED / "models" / "mnist_FNN_1.onnx"),
          "cnn1": ("CNN1", SHARED / "models" / "convSmallRELU__Point.pth")}
MEAN, STD = 0.1307, 0.3081


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("net", choices=sorted(MODELS))
    p.add_argument("--images", type=int, default=25)
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--phase1", choices=("lawson", "lstsq", "lp"), default="lawson")
    p.add_argument("--lawson-steps", type=int, default=1)
    p.add_argument("--bracket", choices=("lawson", "lstsq", "lp"),
                   help="binary search with this Phase 1, then settle with --phase1")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--continuous", action="store_true", help="also refine between grid points")
    p.add_argument("--sandwich", action="store_true",
                   help="certify each image first (certified lower, attack upper)")
    p.add_argument("--timeout", type=float, default=60.0, help="certify seconds per image")
    p.add_argument("--cache", type=Path, help="directory for the converted CNN1 ONNX file")
    p.add_argument("--csv", type=Path, help="per-image results")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def published(name: str) -> dict[int, int]:
    with RMAX.open() as f:
        return {int(r["train_index"]): int(r["r_max_255"]) for r in csv.DictReader(f)
                if r["net"] == name}


def model_file(key: str, cache: Path | None) -> Path:
    name, src = MODELS[key]
    if src.suffix == ".onnx":
        return src
    sys.path.insert(0, str(ROOT / "scripts"))
    from convert_convsmall import convert

    folder = cache or Path(tempfile.mkdtemp(prefix="verinet-deeppac-"))
    dst = folder / f"{name.lower()}.onnx"
    if not dst.is_file():
        err = convert(src, dst)
        print(f"converted {src.name} -> {dst} (max |onnx - torch| {err:.2g})")
    return dst


def run(args: argparse.Namespace) -> list[dict[str, object]]:
    from verinet import api
    from verinet.data import load_samples
    from verinet.pac import FeatureMap, PacOptions, RadiusSearch
    from verinet.pac.run import PacRun
    from verinet.runs.dataset import pac_certify

    name = MODELS[args.net][0]
    model = api.load_model(model_file(args.net, args.cache), mean=[MEAN], std=[STD])
    data = load_samples(MNIST, n_inputs=model.n_inputs, n_classes=model.n_outputs,
                        scale=255.0, samples=args.images, start=args.start)
    run = PacRun(PacOptions(phase1=args.phase1, lawson_steps=args.lawson_steps,
                            seed=args.seed),
                 FeatureMap.normalisation(MEAN, STD, model.network.input_shape),
                 RadiusSearch(continuous=args.continuous, bracket=args.bracket))
    t0 = time.monotonic()

    def progress(it, total):
        for k, rep in enumerate(it, 1):
            yield rep
            print(f"  image {rep.index} ({k}/{total}): done after {time.monotonic() - t0:.0f} s",
                  file=sys.stderr)

    if args.sandwich:
        from verinet.certify.engine import CertifyOptions
        from verinet.runs.dataset import certify

        report = certify(model.network, model.onnx_eval, data.x, data.y,
                         CertifyOptions(radius=True, timeout=args.timeout), indices=data.indices,
                         progress=progress, pac=run, model_name=name, data_name=str(MNIST))
    else:
        report = pac_certify(model.network, model.onnx_eval, data.x, data.y, run.options,
                             run.features, search=run.search, indices=data.indices,
                             progress=progress, model_name=name, data_name=str(MNIST))
    ref = published(name)
    rows = []
    for s in report.samples:
        p, r = s.pac, s.radius
        rec: dict[str, object] = {"image": s.index, "label": s.label, "published": ref.get(s.index)}
        if p is None or p.radius is None:
            rec.update(ours=None)
            rows.append(rec)
            continue
        checks = p.checks
        unsafe = [c.radius for c in checks if c.verdict.value == "unsafe"]
        main = [c for c in checks if c.phase1 == p.phase1]
        rec.update(ours=round(p.grid_radius * 255), pac=p.radius, verdicts=len(checks),
                   main_verdicts=len(main), search_s=p.seconds,
                   verdict_s=statistics.mean(c.seconds for c in checks),
                   verdict_max_s=max(c.seconds for c in checks),
                   main_verdict_s=statistics.mean(c.seconds for c in main) if main else None,
                   unsafe_below_lower=None if not args.sandwich or r is None else
                   sum(u < r.lower for u in unsafe),
                   lower=None if not args.sandwich or r is None else r.lower,
                   upper=None if not args.sandwich or r is None else r.upper,
                   upper_by=None if not args.sandwich or r is None else r.upper_by)
        rows.append(rec)
    return rows


def summary(rows: list[dict[str, object]], args: argparse.Namespace) -> None:
    print(f"{'img':>3} {'label':>5} {'pub':>4} {'ours':>4} {'diff':>4} {'verdicts':>8} "
          f"{'s/verdict':>9} {'s/search':>8}" + ("  [lower, upper]*255   PAC*255  where"
                                                  if args.sandwich else ""))
    for r in rows:
        if r.get("ours") is None:
            print(f"{r['image']:>3} {r['label']:>5} {r['published']!s:>4}    - (misclassified)")
            continue
        diff = int(r["ours"]) - int(r["published"])  # type: ignore[arg-type]
        line = (f"{r['image']:>3} {r['label']:>5} {r['published']:>4} {r['ours']:>4} "
                f"{diff:>+4} {r['verdicts']:>8} {r['verdict_s']:>9.2f} {r['search_s']:>8.1f}")
        if args.sandwich:
            lo, hi, pac = float(r["lower"]), float(r["upper"]), float(r["pac"])  # type: ignore[arg-type]
            where = "inside" if lo <= pac <= hi else ("above" if pac > hi else "below")
            line += f"  [{lo * 255:6.2f}, {hi * 255:6.2f}]  {pac * 255:7.2f}  {where}"
        print(line)
    done = [r for r in rows if r.get("ours") is not None]
    if not done:
        return
    diffs = [abs(int(r["ours"]) - int(r["published"])) for r in done]  # type: ignore[arg-type]
    vs = [float(r["verdict_s"]) for r in done]  # type: ignore[arg-type]
    ss = [float(r["search_s"]) for r in done]  # type: ignore[arg-type]
    print(f"\nexact {sum(d == 0 for d in diffs)}/{len(done)}, within 1: "
          f"{sum(d <= 1 for d in diffs)}, within 2: {sum(d <= 2 for d in diffs)}, max |diff| "
          f"{max(diffs)}; mean r_max ours {statistics.mean(int(r['ours']) for r in done):.2f} "
          f"vs published {statistics.mean(int(r['published']) for r in done):.2f}")
    print(f"seconds per verdict: mean {statistics.mean(vs):.2f}, max "
          f"{max(float(r['verdict_max_s']) for r in done):.2f}; per radius search: mean "
          f"{statistics.mean(ss):.1f}, max {max(ss):.1f}")
    if args.bracket:
        mv = [float(r["main_verdict_s"]) for r in done if r["main_verdict_s"] is not None]  # type: ignore[arg-type]
        print(f"bracketed by --phase1 {args.bracket}: {args.phase1} verdicts per image mean "
              f"{statistics.mean(int(r['main_verdicts']) for r in done):.1f} "  # type: ignore[arg-type]
              f"(mean {statistics.mean(mv):.2f} s each)")
    if args.sandwich:
        bad = sum(int(r["unsafe_below_lower"]) for r in done)  # type: ignore[arg-type]
        inside = above = below = 0
        for r in done:
            lo, hi, pac = float(r["lower"]), float(r["upper"]), float(r["pac"])  # type: ignore[arg-type]
            inside += lo <= pac <= hi
            above += pac > hi
            below += pac < lo
        print(f"PAC 'unsafe' verdicts below the certified lower bound: {bad} (must be 0)")
        print(f"PAC radius inside [lower, upper]: {inside}/{len(done)}, above upper: {above}, "
              f"below lower: {below}")
        tight = sum(str(r["upper_by"]).startswith("pac-") for r in done)
        print(f"PAC counterexamples tightened the attack upper bound on {tight} image(s)")


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    import torch

    torch.set_num_threads(1)
    if not MNIST.is_file() or not MODELS[args.net][1].is_file():
        print(f"skipped: {SHARED} not found")
        return 0
    t0 = time.monotonic()
    rows = run(args)
    summary(rows, args)
    print(f"wall {time.monotonic() - t0:.0f} s")
    if args.csv:
        keys = sorted({k for r in rows for k in r}, key=lambda k: list(rows[0]).index(k)
                      if k in rows[0] else math.inf)
        with args.csv.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
