"""AdvGAN (Xiao et al. 2018) on DeepPAC's FNN1 at eps 0.3 and the bundled digits MLP at
eps 0.1: training time, success rate (confirmed on the float64 IR and the ONNX model) next
to PGD-50's, and the generation time per example against PGD-50's, side by side.

    python3 benchmarks/advgan.py [--cases fnn1,fnn1-conv,fnn1-all,digits] [--no-ceiling]

* ``fnn1``: ``../shared/deeppac/models/mnist_FNN_1.onnx`` with the MNIST normalisation
  folded in (``--scale 255 --mean 0.1307 --std 0.3081``, as ``verinet certify``): eps 0.3
  is in raw [0, 1] pixels, the paper's setting.  Only 100 MNIST images are shared
  (``mnist_100.csv``, the first 100 training images): the generator trains on images
  0-49 (random shifts of up to 2 pixels as augmentation) and is evaluated on 50-99.
  ``fnn1-conv``: the same with the conv generator; ``fnn1-all``: trained and evaluated on
  all 100 (training-set figures, reported as such).
* ``digits``: the bundled digits MLP, trained on the digits train split
  (:func:`verinet.train.data.digits`, 1,347 images, scikit-learn needed), evaluated on the
  100 bundled test samples.  With the ceiling (default), ``verinet certify``'s engine
  decides every correctly classified sample at eps: a sample proven robust cannot be
  fooled by any attack.

Success rate: share of the correctly classified evaluation samples whose example is
misclassified by the float64 IR and by the ONNX model (``verinet.advgan.attack_samples``).
PGD-50 is ``verinet.attacks.PGD(steps=50, restarts=1)`` on the same samples (IR-confirmed).
Generation time is the attack's ``run`` (what produces the candidates; the final float64
IR check is common to both and timed separately in "call"), median of 5 repeats, on the
batch of evaluation samples and one sample at a time.  PGD stops for a sample once it is
fooled, so "PGD-50 full" also times 50 steps on every sample (eps 1e-4: nothing is fooled,
all 50 steps run).  The same three are also timed on a batch of 1,000 rows (the
evaluation samples repeated), where per-call overheads vanish.  Torch on one thread;
the machine is shared, so times include others' load.  Writes ``advgan.txt`` (command
and git revision first) and ``advgan.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from verinet.advgan import GeneratorConfig, TrainOptions, attack_samples, train_advgan
from verinet.attacks import PGD, AdvGAN

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / ".." / "shared" / "deeppac"
FNN1 = SHARED / "models" / "mnist_FNN_1.onnx"
MNIST = SHARED / "extras" / "mnist_100.csv"
CASES = ("fnn1", "fnn1-conv", "fnn1-all", "digits")
REPEATS = 5
BIG = 1000  # rows of the large-batch timing: the evaluation samples repeated



class _Clocked:
    """Records the seconds of every ``run`` in ``clock`` (mixed in before an attack)."""

    clock: list[float]

    def run(self, *args: Any) -> torch.Tensor:
        t = time.perf_counter()
        out = super().run(*args)  # type: ignore[misc]
        self.clock.append(time.perf_counter() - t)
        return out


@dataclass(frozen=True, kw_only=True, eq=False)
class TimedAdvGAN(_Clocked, AdvGAN):
    clock: list[float] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True, eq=False)
class TimedPGD(_Clocked, PGD):
    clock: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Case:
    name: str
    eps: float
    kind: str
    width: int
    options: TrainOptions
    split: str


def cases(epochs_scale: float) -> dict[str, Case]:
    def opts(epochs: int, **kw: Any) -> TrainOptions:
        return TrainOptions(epochs=max(1, round(epochs * epochs_scale)), log_every=0, **kw)

    mnist = {"lr": 3e-4, "shift": 2}
    return {
        "fnn1": Case("fnn1", 0.3, "mlp", 24, opts(1500, **mnist), "train 0-49, test 50-99"),
        "fnn1-conv": Case("fnn1-conv", 0.3, "conv", 16, opts(1500, **{**mnist, "lr": 1e-3}),
                          "train 0-49, test 50-99"),
        "fnn1-all": Case("fnn1-all", 0.3, "mlp", 24, opts(750, **mnist),
                         "train and test 0-99 (training-set figures)"),
        "digits": Case("digits", 0.1, "mlp", 32, opts(400, lr=3e-3),
                       "digits train split (1,347), test: the 100 bundled samples"),
    }


def load(case: Case) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from verinet import api, examples
    from verinet.data import load_samples

    if case.name.startswith("fnn1"):
        model = api.load_model(FNN1, mean=[0.1307], std=[0.3081])
        d = load_samples(MNIST, n_inputs=784, n_classes=10, scale=255)
        if case.name == "fnn1-all":
            return model, d.x, d.y, d.x, d.y
        return model, d.x[:50], d.y[:50], d.x[50:], d.y[50:]
    from verinet.train.data import digits

    model = api.load_model(examples.model_path())
    split = digits()
    test = np.load(examples.data_path())
    return (model, split.x_train.astype(np.float64), split.y_train,
            test["x"].astype(np.float64), test["y"])


def median_run(attack: Any, net: Any, x: np.ndarray, y: np.ndarray, eps: float) -> float:
    attack.clock.clear()
    for _ in range(REPEATS):
        attack(net, x, y, eps=eps)
    return statistics.median(attack.clock)


def median_call(attack: Any, net: Any, x: np.ndarray, y: np.ndarray, eps: float) -> float:
    times = []
    for _ in range(REPEATS):
        t = time.perf_counter()
        attack(net, x, y, eps=eps)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def one_at_a_time(attack: Any, net: Any, x: np.ndarray, y: np.ndarray, eps: float) -> float:
    """Median seconds of ``run`` over single-sample calls (the first 20 samples)."""
    attack.clock.clear()
    for i in range(min(20, len(x))):
        attack(net, x[i:i + 1], y[i:i + 1], eps=eps)
    return statistics.median(attack.clock)


def timings(gen_attack: TimedAdvGAN, net: Any, x: np.ndarray, y: np.ndarray,
            eps: float) -> dict[str, float]:
    pgd = TimedPGD(steps=50, restarts=1)
    n = len(x)
    t = {"advgan_run": median_run(gen_attack, net, x, y, eps) / n,
         "pgd50_run": median_run(pgd, net, x, y, eps) / n,
         "pgd50_full_run": median_run(pgd, net, x, y, 1e-4) / n,
         "advgan_call": median_call(gen_attack, net, x, y, eps) / n,
         "pgd50_call": median_call(pgd, net, x, y, eps) / n,
         "advgan_single": one_at_a_time(gen_attack, net, x, y, eps),
         "pgd50_single": one_at_a_time(pgd, net, x, y, eps)}
    reps = -(-BIG // n)
    xb, yb = np.tile(x, (reps, 1))[:BIG], np.tile(y, reps)[:BIG]
    t["advgan_big"] = median_run(gen_attack, net, xb, yb, eps) / len(xb)
    t["pgd50_big"] = median_run(pgd, net, xb, yb, eps) / len(xb)
    t["pgd50_full_big"] = median_run(pgd, net, xb, yb, 1e-4) / len(xb)
    return t


def ceiling(model: Any, x: np.ndarray, y: np.ndarray, eps: float) -> dict[str, int]:
    """Samples proven robust at eps (no attack can fool them) and decided by certify."""
    from verinet import api

    logging.getLogger("verinet").setLevel(logging.ERROR)
    rep = api.certify(model, x, y, eps=eps, timeout=10)
    s = rep.summary()
    return {"verified": s.verified, "falsified": s.falsified, "unknown": s.unknown}


def run_case(case: Case, with_ceiling: bool) -> dict[str, Any]:
    model, x_tr, y_tr, x_te, y_te = load(case)
    net = model.network
    cfg = GeneratorConfig(input_shape=net.input_shape, eps=case.eps, kind=case.kind,
                          width=case.width)
    trained = train_advgan(net, x_tr, y_tr, config=cfg, options=case.options)
    attack = TimedAdvGAN(generator=trained.generator)
    rep = attack_samples(net, model.onnx_eval, attack, x_te, y_te)
    correct = np.array([s.correct for s in rep.samples])
    xc, yc = x_te[correct], y_te[correct]
    pgd = PGD(steps=50, restarts=1)(net, xc, yc, eps=case.eps)
    out: dict[str, Any] = {
        "case": case.name, "eps": case.eps, "split": case.split, "kind": case.kind,
        "width": trained.generator.config.width, "options": asdict(case.options),
        "n_train": trained.result.n_train, "train_seconds": trained.result.seconds,
        "train_success": trained.result.train_success, "best_epoch": trained.result.best_epoch,
        **rep.summary(), "pgd50_success": float(pgd.success.mean()),
        "times": timings(attack, net, xc, yc, case.eps)}
    if with_ceiling and case.name == "digits":
        out["ceiling"] = ceiling(model, xc, yc, case.eps)
    return out


def revision() -> str:
    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=ROOT, text=True,
                              capture_output=True).stdout.strip()

    rev = git("rev-parse", "--short", "HEAD") or "?"
    return rev + (" (with uncommitted changes)" if git("status", "--porcelain") else "")


def table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [f"{'case':10} {'eps':>4} {'gen':>9} {'train s':>7} {'correct':>7} {'IR':>4} "
             f"{'IR+ONNX':>7} {'success':>7} {'PGD-50':>6}"]
    for r in rows:
        lines.append(f"{r['case']:10} {r['eps']:4g} {r['kind'] + '-' + str(r['width']):>9} "
                     f"{r['train_seconds']:7.1f} {r['correct']:7d} {r['success_ir']:4d} "
                     f"{r['confirmed']:7d} {100 * r['success_rate']:6.1f}% "
                     f"{100 * r['pgd50_success']:5.1f}%")
    lines += ["", "per example, microseconds (run = the attack's search; call = with the "
              "final float64 IR check)",
              f"{'case':10} {'AdvGAN run':>10} {'PGD-50 run':>10} {'ratio':>6} "
              f"{'PGD full':>9} {'ratio':>6} {'AdvGAN 1x':>9} {'PGD 1x':>8} {'ratio':>6} "
              f"{'call ratio':>10}"]
    for r in rows:
        t = {k: 1e6 * v for k, v in r["times"].items()}
        lines.append(
            f"{r['case']:10} {t['advgan_run']:10.2f} {t['pgd50_run']:10.2f} "
            f"{t['pgd50_run'] / t['advgan_run']:6.1f} {t['pgd50_full_run']:9.2f} "
            f"{t['pgd50_full_run'] / t['advgan_run']:6.1f} {t['advgan_single']:9.1f} "
            f"{t['pgd50_single']:8.1f} {t['pgd50_single'] / t['advgan_single']:6.1f} "
            f"{t['pgd50_call'] / t['advgan_call']:10.1f}")
    lines += ["", f"batch of {BIG} rows (the evaluation samples repeated), per example, "
              "microseconds",
              f"{'case':10} {'AdvGAN run':>10} {'PGD-50 run':>10} {'ratio':>6} "
              f"{'PGD full':>9} {'ratio':>6}"]
    for r in rows:
        t = {k: 1e6 * v for k, v in r["times"].items()}
        lines.append(f"{r['case']:10} {t['advgan_big']:10.2f} {t['pgd50_big']:10.2f} "
                     f"{t['pgd50_big'] / t['advgan_big']:6.1f} {t['pgd50_full_big']:9.2f} "
                     f"{t['pgd50_full_big'] / t['advgan_big']:6.1f}")
    for r in rows:
        if "ceiling" in r:
            c = r["ceiling"]
            lines.append(f"\n{r['case']}: certify at eps {r['eps']:g} on the {r['correct']} "
                         f"correct samples: {c['verified']} proven robust, {c['falsified']} "
                         f"falsified, {c['unknown']} unknown -> no attack exceeds "
                         f"{100 * (r['correct'] - c['verified']) / r['correct']:.1f}%")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--epochs-scale", type=float, default=1.0, help="scale every epoch count")
    p.add_argument("--no-ceiling", action="store_true", help="skip certify on digits")
    p.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results" / "advgan")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    chosen = [c for c in args.cases.split(",") if c]
    bad = [c for c in chosen if c not in CASES]
    if bad:
        p.error(f"unknown case(s) {', '.join(bad)}; choose from {', '.join(CASES)}")
    specs = cases(args.epochs_scale)
    start = time.perf_counter()
    rows = []
    for name in chosen:
        rows.append(run_case(specs[name], not args.no_ceiling))
        print(f"{name}: done ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    command = " ".join(argv if argv is not None else sys.argv[1:])
    head = [f"# python3 benchmarks/advgan.py {command}".rstrip(),
            f"# git revision {revision()}; torch {torch.__version__}, 1 thread; "
            f"{time.perf_counter() - start:.0f} s in all"]
    text = "\n".join(head + table(rows)) + "\n"
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "advgan.txt").write_text(text)
    (args.out_dir / "advgan.json").write_text(json.dumps({"rows": rows}, indent=1, default=str))
    print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
