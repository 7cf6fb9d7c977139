"""``verinet smooth [MODEL.onnx] --sigma S --data FILE [--n0 100 --n 10000 --alpha 0.001
--batch 1000 --seed 0 --predict --out JSON --csv CSV --plot PNG]``: randomized smoothing.

Runs the ``CERTIFY`` (default) or ``PREDICT`` algorithm of Cohen, Rosenfeld and Kolter
(ICML 2019) on every selected sample (:mod:`verinet.smoothing`): the smoothed
classifier's class and certified L2 radius ``sigma * Phi^-1(pA_lower)``, or an
abstention.  The guarantee is **probabilistic** (confidence ``1 - alpha`` over the noise)
and about the **smoothed classifier, not the base network**; nothing here enters the
base network's sound bounds.  Noise is added in the raw input space (before a
``--mean/--std`` normalisation) and is not clipped to the input domain unless ``--clip
LO HI`` is given.  Without a model (and without ``--data``) it runs on the bundled
digits example (a model trained without noise, so expect small radii).

A row is printed as each sample finishes, then the summary; ``--out``, ``--csv`` and
``--plot`` are written at the end (and, on an interrupt, from the finished samples).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Any

from verinet.cli.options import (
    add_layout,
    add_model_and_data,
    add_no_check,
    add_normalisation,
    add_outputs,
    add_seed,
    add_selection,
    add_threads,
    number,
    numbers,
)
from verinet.types import InputError

log = logging.getLogger("verinet")


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register the ``smooth`` subcommand."""
    c = sub.add_parser("smooth", parents=[common],
                       help="randomized smoothing: CERTIFY / PREDICT of the smoothed classifier "
                       "(probabilistic L2 radii)")
    add_model_and_data(c)
    add_selection(c)
    add_normalisation(c)
    add_layout(c)
    c.add_argument("--sigma", type=number, required=True,
                   help="std of the Gaussian noise (raw input units, > 0)")
    c.add_argument("--n0", type=int, default=100, help="selection samples of CERTIFY (100)")
    c.add_argument("--n", type=int, default=10_000,
                   help="estimation samples of CERTIFY, or PREDICT's samples (10000; >= n0)")
    c.add_argument("--alpha", type=number, default=0.001,
                   help="failure probability, in (0, 1): results hold at confidence "
                   "1 - alpha (0.001)")
    c.add_argument("--batch", type=int, default=1000,
                   help="noisy copies evaluated at once (1000; never changes a result)")
    c.add_argument("--predict", action="store_true",
                   help="run PREDICT (class or abstain, binomial test) instead of CERTIFY")
    c.add_argument("--clip", type=numbers, metavar="'LO HI'",
                   help="clip every noisy sample to [LO, HI] (default: no clipping, as the "
                   "paper; the certificate is then that of the clipped model)")
    c.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                   help="evaluation precision of the base network (float32)")
    c.add_argument("--radii", type=numbers,
                   help="L2 radii of the summary's certified accuracy (default 0 0.25 0.5 "
                   "0.75 1)")
    add_outputs(c, out="JSON report", plot="PNG of the certified accuracy over L2 radius")
    add_seed(c, help="noise seed; with each sample's index in the data file it seeds the "
             "sample's draws (default 0)")
    add_threads(c)
    add_no_check(c)


def options_from_args(args: argparse.Namespace) -> Any:
    """The :class:`~verinet.smoothing.SmoothingOptions` of the command line (bad values are
    one-line :class:`InputError`\\ s, before any file is read)."""
    from verinet.smoothing import SmoothingOptions

    clip = args.clip
    if clip is not None and len(clip) != 2:
        raise InputError(f"--clip takes two numbers LO HI, got {len(clip)}")
    return SmoothingOptions(sigma=args.sigma, n0=args.n0, n=args.n, alpha=args.alpha,
                            batch=args.batch, seed=args.seed,
                            clip=None if clip is None else (clip[0], clip[1]),
                            dtype=args.dtype)


def _check_outputs(args: argparse.Namespace) -> None:
    from verinet.report.paths import check_outputs

    if args.predict and args.plot is not None:
        raise InputError("--plot draws CERTIFY's certified accuracy: drop --predict or --plot")
    check_outputs((("--out", args.out), ("--csv", args.csv), ("--plot", args.plot)))


def _write(args: argparse.Namespace, rep: Any, radii: tuple[float, ...]) -> None:
    from verinet.report import smoothing as out

    if args.out is not None:
        out.write_json(rep, args.out, radii)
    if args.csv is not None:
        out.write_csv(rep, args.csv)
    if args.plot is not None and rep.n:
        out.plot_curve(rep, args.plot)


def cmd_smooth(args: argparse.Namespace) -> int:
    from verinet import api
    from verinet.cli.samples import model_and_data
    from verinet.data import load_samples
    from verinet.report import smoothing as out
    from verinet.smoothing import SmoothingReport, run_smoothing

    options = options_from_args(args)
    radii = tuple(out.SUMMARY_RADII if args.radii is None else args.radii)
    if any(r < 0 for r in radii):
        raise InputError(f"--radii must be >= 0, got {' '.join(map(str, radii))}")
    _check_outputs(args)
    model_path, data_path = model_and_data(args)
    model = api.load_model(model_path, mean=args.mean, std=args.std, check=not args.no_check)
    data = load_samples(data_path, n_inputs=model.n_inputs, n_classes=model.n_outputs,
                        scale=args.scale, samples=args.samples, start=args.start,
                        layout=args.layout, input_shape=model.network.input_shape)
    mode = "predict" if args.predict else "certify"
    done: list[Any] = []
    sys.stdout.write(out.header(mode))

    def on_sample(r: Any) -> None:
        done.append(r)
        sys.stdout.write(out.format_row(r))
        sys.stdout.flush()

    start = time.perf_counter()
    try:
        rep = run_smoothing(model.network, data.x, data.y, options, mode=mode,
                            indices=data.indices, model=model_path, data=data_path,
                            on_sample=on_sample)
    except KeyboardInterrupt:
        log.warning("interrupted: writing the %d finished sample(s)", len(done))
        _write(args, SmoothingReport(mode, options, tuple(done), model=model_path,
                                     data=data_path, seconds=time.perf_counter() - start),
               radii)
        raise
    sys.stdout.write("\n" + out.format_summary(rep, radii))
    sys.stdout.flush()
    _write(args, rep, radii)
    return 0
