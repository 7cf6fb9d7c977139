"""``verinet clever [MODEL.onnx] --data FILE ...`` and ``verinet roby [MODEL.onnx] --data
FILE ...``: the attack-independent estimates of :mod:`verinet.estimates`.

Without a model (and without ``--data``) both run on the bundled digits example.  Both
print a table and write a JSON report with ``--out`` (atomically, at the end).  Every
number they print is an **estimate**, never a bound.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

import numpy as np

from verinet.cli.options import (
    add_layout,
    add_model_and_data,
    add_no_check,
    add_normalisation,
    add_seed,
    add_selection,
    add_threads,
    number,
)
from verinet.types import InputError

log = logging.getLogger("verinet")


def _target(text: str) -> int | str:
    if text in ("top2", "random", "least"):
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"target must be a class index or top2, random, least; got {text!r}") from None


def _data_options(p: argparse.ArgumentParser) -> None:
    add_model_and_data(p)
    add_selection(p)
    add_normalisation(p)
    add_layout(p)
    p.add_argument("--out", help="JSON report")
    add_threads(p)
    add_no_check(p)


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register the ``clever`` and ``roby`` subcommands."""
    c = sub.add_parser("clever", parents=[common],
                       help="CLEVER estimate of the minimal adversarial distortion (not a bound)")
    _data_options(c)
    c.add_argument("--norm", default="inf", choices=("inf", "2", "1"),
                   help="perturbation norm (default inf, as certify's radii)")
    c.add_argument("--target", type=_target,
                   help="class index or top2/random/least (default: untargeted)")
    c.add_argument("--batches", type=int, default=500, help="Nb batches (500)")
    c.add_argument("--batch-size", type=int, default=1024, help="Ns points per batch (1024)")
    c.add_argument("--radius", type=number,
                   help="sampling radius R (default: 0.1 inf, 3 L2, 30 L1, the original's)")
    c.add_argument("--pool-factor", type=int,
                   help="ART's scheme: bootstrap the batches from POOL*Ns points")
    add_seed(c, help="random seed (1215, the original's)", default=1215)
    r = sub.add_parser("roby", parents=[common],
                       help="ROBY feature-space statistics FSA/FSD/FSC of a labelled set")
    _data_options(r)
    r.add_argument("--layer", help="IR node whose values are the features (default: logits)")
    r.add_argument("--normalisation", choices=("joint", "separate"), default="joint",
                   help="min-max over all distances at once (joint, default) or per "
                        "statistic (separate, the original code)")


def _load(args: argparse.Namespace) -> tuple[Any, Any, str, str]:
    from verinet import api
    from verinet.data import load_samples

    if args.model is None:
        from verinet import examples

        if args.data is not None:
            raise InputError("--data given without a model")
        log.warning("no model given: using the bundled digits example")
        model_path, data_path = str(examples.model_path()), str(examples.data_path())
    elif args.data is None:
        raise InputError("--data FILE is required with a model")
    else:
        model_path, data_path = args.model, args.data
    model = api.load_model(model_path, mean=args.mean, std=args.std, check=not args.no_check)
    data = load_samples(data_path, n_inputs=model.n_inputs, n_classes=model.n_outputs,
                        scale=args.scale, samples=args.samples, start=args.start,
                        layout=args.layout, input_shape=model.network.input_shape)
    return model, data, model_path, data_path


def _write_json(path: str, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` atomically (:func:`verinet.report.atomic.atomic_write`:
    a failure is one line and leaves no temporary file)."""
    from verinet.report.atomic import atomic_write

    atomic_write(path, json.dumps(payload, indent=1, allow_nan=False))


def cmd_clever(args: argparse.Namespace) -> int:
    from verinet.estimates.clever import CleverOptions, clever_scores
    from verinet.estimates.common import norm_name, parse_norm

    p = parse_norm(args.norm)
    options = CleverOptions(nb_batches=args.batches, batch_size=args.batch_size,
                            radius=args.radius, pool_factor=args.pool_factor)
    model, data, model_path, data_path = _load(args)
    results = clever_scores(model.network, data.x, data.y, norm=p, target=args.target,
                            options=options, rng=np.random.default_rng(args.seed),
                            indices=data.indices)
    scores = np.array([r.score for r in results])
    if args.out is not None:
        _write_json(args.out, {
            "model": model_path, "data": data_path, "estimate": "CLEVER", "guarantee":
            "estimate", "norm": norm_name(p), "target": args.target, "seed": args.seed,
            "options": {"nb_batches": options.nb_batches, "batch_size": options.batch_size,
                        "radius": options.radius_for(p), "pool_factor": options.pool_factor,
                        "c_init": list(options.c_init), "shape_reg": options.shape_reg,
                        "min_pvalue": options.min_pvalue},
            "summary": {"n": len(results), "mean": float(scores.mean()),
                        "median": float(np.median(scores))},
            "samples": [r.as_dict() for r in results]})
    lines = [f"CLEVER (L{norm_name(p)}, R {options.radius_for(p):g}, Nb {options.nb_batches}, "
             f"Ns {options.batch_size}): an estimate of the minimal adversarial distortion, "
             "not a bound",
             f"{'index':>6} {'label':>5} {'pred':>4} {'score':>10} {'target':>6} "
             f"{'capped':>6} {'fallback':>8} {'seconds':>8}"]
    for r in results:
        fb = sum(t.fit.fallback for t in r.targets)
        lines.append(f"{r.index:6d} {r.label:5d} {r.predicted:4d} {r.score:10.5g} "
                     f"{r.target:6d} {'yes' if r.capped else 'no':>6} "
                     f"{fb:4d}/{len(r.targets):<3d} {r.seconds:8.2f}")
    lines.append(f"{len(results)} samples: mean {scores.mean():.5g}, "
                 f"median {np.median(scores):.5g}")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def cmd_roby(args: argparse.Namespace) -> int:
    from verinet.estimates.roby import roby

    model, data, model_path, data_path = _load(args)
    res = roby(model.network, data.x, data.y, layer=args.layer,
               normalisation=args.normalisation)
    if args.out is not None:
        _write_json(args.out, {"model": model_path, "data": data_path, "estimate": "ROBY",
                               **res.as_dict()})
    lines = [f"ROBY on {res.layer} ({res.n_features} features, {sum(res.counts)} samples, "
             f"{len(res.classes)} classes, {res.normalisation} min-max): an estimate",
             f"{'class':>5} {'count':>5} {'spread':>10} {'FSA':>6}"]
    for k, c in enumerate(res.classes):
        lines.append(f"{c:5d} {res.counts[k]:5d} {res.spread[k]:10.4g} "
                     f"{res.fsa_per_class[k]:6.3f}")
    lines.append(f"ROBY {res.roby:.4f}   FSA {res.fsa:.4f}   FSD {res.fsd:.4f}   "
                 f"FSC {res.fsc:.4f}")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0
