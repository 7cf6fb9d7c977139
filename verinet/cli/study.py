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
    p.add_argument("--advgan-epochs", type=int, default=0,
                   help="train an AdvGAN generator against each model for this many epochs "
                        "(default 0: no AdvGAN) and report its confirmed success rate and "
                        "the AdvGAN transfer matrix")
    p.add_argument("--advgan-data",
                   help="AdvGAN training data (same formats as --data; default: the study's "
                        "samples, then the success rates are training-set figures)")
    p.add_argument("--advgan-generators",
                   help="comma-separated trained generators (verinet advgan train), one per "
                        "model in order; an empty entry: train one (needs --advgan-epochs)")
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


def _generators(args: argparse.Namespace, n: int, eps: float) -> list[Any]:
    """The ``--advgan-generators`` (None per empty entry), read and checked against eps."""
    if args.advgan_generators is None:
        return [None] * n
    from verinet.advgan.checkpoint import load_generator

    files = [f.strip() for f in args.advgan_generators.split(",")]
    if len(files) != n:
        raise InputError(f"--advgan-generators lists {len(files)} files for {n} models")
    if not all(files) and args.advgan_epochs == 0:
        raise InputError("--advgan-generators has an empty entry: give --advgan-epochs to "
                         "train that model's generator")
    return [load_generator(f, eps=eps).generator if f else None for f in files]


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
                           smooth_n=args.smooth_n, advgan_epochs=args.advgan_epochs,
                           seed=args.seed)
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
    gens = _generators(args, len(paths), options.eps)  # bad files fail before the models
    models = [StudyModel(n, (m := api.load_model(p, mean=args.mean, std=args.std,
                                                 check=not args.no_check)).network,
                         m.onnx_eval, g) for n, p, g in zip(names, paths, gens, strict=True)]
    first = models[0].network

    def samples(path: str, whole: bool = False) -> Any:
        return load_samples(path, n_inputs=first.n_inputs, n_classes=first.n_outputs,
                            scale=args.scale, samples=None if whole else args.samples,
                            start=0 if whole else args.start, layout=args.layout,
                            input_shape=first.input_shape)

    data = samples(data_path)
    advgan_data = None
    if args.advgan_data is not None:
        if options.advgan_epochs == 0:
            raise InputError("--advgan-data needs --advgan-epochs > 0")
        t = samples(args.advgan_data, whole=True)
        advgan_data = (t.x, t.y)
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

    rep = run_study(models, data.x, data.y, options, data=str(data_path), on_model=partial,
                    advgan_data=advgan_data)
    if args.out is not None:
        write_json(rep, args.out)
    if args.csv is not None:
        write_csv(rep, args.csv)
    if args.plot is not None:
        plot_study(rep, args.plot)
    sys.stdout.write(format_table(rep) + "\n")
    return 0
