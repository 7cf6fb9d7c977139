"""``verinet study MODEL.onnx [MODEL.onnx ...] --data FILE``: compare models on one
labelled set (see :mod:`verinet.study`).

Prints the per-model table, the transfer matrix, the Pareto front and the rank
correlations; ``--out`` writes JSON (rewritten atomically after every model, so an
error keeps the models already measured), ``--csv`` one row per model, ``--plot`` the
figures.  Without ``--data`` and with no model the bundled digits example is studied
alone.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np

from verinet.cli.options import (
    add_layout,
    add_no_check,
    add_normalisation,
    add_seed,
    add_selection,
    add_threads,
    number,
)
from verinet.types import InputError

log = logging.getLogger("verinet")


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register the ``study`` subcommand."""
    p = sub.add_parser("study", parents=[common],
                       help="compare models: accuracy, attacks, CLEVER, ROBY, certified "
                            "radii, transfer attacks")
    p.add_argument("models", nargs="*", help="ONNX models (default: the bundled example)")
    p.add_argument("--names", help="comma-separated model names (default: file stems)")
    p.add_argument("--data", help=".npz (x, y), .npy (label first) or .csv (label first)")
    add_selection(p)
    add_normalisation(p, mean="input normalisation mean (every model)",
                      std="input normalisation std (every model)")
    add_layout(p)
    p.add_argument("--eps", type=number, default=0.1,
                   help="L-inf radius of the attack success rates (default 0.1)")
    p.add_argument("--ifgsm-steps", type=int, default=20, help="I-FGSM steps (20)")
    p.add_argument("--cw-steps", type=int, default=200, help="C&W L2 Adam steps (200)")
    p.add_argument("--clever-batches", type=int, default=50, help="CLEVER Nb (50)")
    p.add_argument("--clever-batch-size", type=int, default=128, help="CLEVER Ns (128)")
    p.add_argument("--certify-timeout", type=number, default=0.0,
                   help="seconds per sample for certified radii (default 0: skipped)")
    p.add_argument("--pac", action="store_true",
                   help="also DeepPAC radii (paper defaults; needs --certify-timeout)")
    p.add_argument("--smooth-sigma", type=number, default=0.0,
                   help="randomized smoothing's certified accuracy at this noise sigma "
                        "(default 0: skipped; probabilistic, the smoothed classifier)")
    p.add_argument("--smooth-radius", type=number, default=0.25,
                   help="the L2 radius of that certified accuracy (0.25)")
    p.add_argument("--smooth-n", type=int, default=1000,
                   help="CERTIFY's estimation draws per sample (1000; n0 100, alpha 0.001)")
    add_seed(p, help="random seed (0)")
    p.add_argument("--out", help="JSON report")
    p.add_argument("--csv", help="CSV, one row per model")
    p.add_argument("--plot", help="figure file (.png, .pdf, ...)")
    add_threads(p)
    add_no_check(p)


def _names(args: argparse.Namespace, paths: list[str]) -> list[str]:
    if args.names is None:
        names = [Path(p).stem for p in paths]
    else:
        names = [n.strip() for n in args.names.split(",")]
        if len(names) != len(paths) or not all(names):
            raise InputError(f"--names lists {len(names)} names for {len(paths)} models")
    if len(set(names)) != len(names):
        raise InputError(f"model names must be unique, got {', '.join(names)} "
                         "(use --names)")
    return names


def cmd_study(args: argparse.Namespace) -> int:
    from verinet import api
    from verinet.data import load_samples
    from verinet.report.study import format_table, plot_study, write_csv, write_json
    from verinet.study.metrics import ModelMetrics, StudyOptions
    from verinet.study.run import StudyModel, StudyReport, run_study

    options = StudyOptions(eps=args.eps, ifgsm_steps=args.ifgsm_steps, cw_steps=args.cw_steps,
                           clever_batches=args.clever_batches,
                           clever_batch_size=args.clever_batch_size,
                           certify_timeout=args.certify_timeout, pac=args.pac,
                           smooth_sigma=args.smooth_sigma, smooth_radius=args.smooth_radius,
                           smooth_n=args.smooth_n, seed=args.seed)
    paths = list(args.models)
    data_path = args.data
    if not paths:
        from verinet import examples

        if data_path is not None:
            raise InputError("--data given without a model")
        log.warning("no model given: studying the bundled digits example")
        paths, data_path = [str(examples.model_path())], str(examples.data_path())
    elif data_path is None:
        raise InputError("--data FILE is required with models")
    names = _names(args, paths)
    models = [StudyModel(n, (m := api.load_model(p, mean=args.mean, std=args.std,
                                                 check=not args.no_check)).network,
                         m.onnx_eval) for n, p in zip(names, paths, strict=True)]
    first = models[0].network
    data = load_samples(data_path, n_inputs=first.n_inputs, n_classes=first.n_outputs,
                        scale=args.scale, samples=args.samples, start=args.start,
                        layout=args.layout, input_shape=first.input_shape)
    done: list[ModelMetrics] = []

    def partial(m: ModelMetrics) -> None:  # keep what is measured if a later model fails
        done.append(m)
        log.info("study: %s measured (%d/%d)", m.name, len(done), len(models))
        if args.out is not None:
            k = len(done)
            write_json(StudyReport(str(data_path), options, tuple(done),
                                   np.full((k, k), np.nan), (), (),
                                   ("partial: the transfer matrix and the cross-model "
                                    "analysis come after the last model",)), args.out)

    rep = run_study(models, data.x, data.y, options, data=str(data_path), on_model=partial)
    if args.out is not None:
        write_json(rep, args.out)
    if args.csv is not None:
        write_csv(rep, args.csv)
    if args.plot is not None:
        plot_study(rep, args.plot)
    sys.stdout.write(format_table(rep) + "\n")
    return 0
