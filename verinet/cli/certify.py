"""``verinet certify [MODEL.onnx] --data FILE --eps E [--radius] ...``

Without a model (and without ``--data``) it runs on the bundled digits example
(:mod:`verinet.examples`).  Outputs, records and workers: :mod:`verinet.cli.samples`.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from verinet.certify import RADIUS_SEARCHES
from verinet.cli.options import add_backend, add_seed, names, number, set_threads
from verinet.cli.samples import (
    add_sample_options,
    eps_and_inputs,
    run_job,
    warm_start,
)

log = logging.getLogger("verinet")

def _attacks() -> tuple[str, ...]:
    from verinet.attacks import REGISTRY  # imported only when --attacks is given

    return tuple(REGISTRY)


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register the ``certify`` subcommand."""
    c = sub.add_parser("certify", parents=[common],
                       help="per-sample robustness sandwich [certified lower, attack upper]")
    add_sample_options(c, plot_help="PNG of the sandwiches and robust-accuracy curves")
    c.add_argument("--eps", type=number, help="L-inf radius to decide (raw input space, 0..1)")
    c.add_argument("--radius", action="store_true",
                   help="compute every sample's radius sandwich (exact when the gap <= tol)")
    c.add_argument("--tolerance", type=number, default=1e-3,
                   help="a radius is exact when upper - lower <= this (default 1e-3)")
    c.add_argument("--timeout", type=number, default=30.0, help="seconds per sample (30)")
    c.add_argument("--attacks", type=names("attack", _attacks), default=("deepfool", "fmn", "pgd"),
                   help="comma list of attack names (fgsm, bim, pgd, cw-l2, cw-linf, deepfool, "
                        "fmn, ead, lbfgs, boundary; default deepfool,fmn,pgd)")
    c.add_argument("--no-milp", action="store_true", help="skip the exact MILP stage")
    c.add_argument("--radius-search", choices=RADIUS_SEARCHES, default="bisection",
                   help="how --radius closes the bracket on high-dimensional models: one "
                        "branch-and-bound tree kept across radii (tree, experimental) or a "
                        "complete verification per bisection probe (default)")
    add_backend(c)
    add_seed(c, help="random seed (attacks, sampling)")
    c.add_argument("--clever", action="store_true",
                   help="also estimate each correct sample's L-inf CLEVER score (an "
                        "estimate, flagged when above the attack upper bound)")
    c.add_argument("--clever-batches", type=int, default=50, help="CLEVER Nb (50)")
    c.add_argument("--clever-batch-size", type=int, default=256, help="CLEVER Ns (256)")
    c.add_argument("--pac", action="store_true",
                   help="also run DeepPAC: each sample's PAC radius (an estimate, never "
                   "counted as certified) next to its sandwich; PAC counterexamples tighten "
                   "the upper bound")
    c.add_argument("--pac-seed", type=int, default=0, help="DeepPAC sampling seed (0)")
    from verinet.cli.pac import add_pac_options

    add_pac_options(c, prefix="pac-")


def cmd_certify(args: argparse.Namespace) -> int:
    with warm_start(args) as warm:  # --ray: the cluster starts while the model loads
        set_threads(args.threads)  # imports torch: after the --ray start has begun
        return _certify(args, warm)


def _certify(args: argparse.Namespace, warm: object) -> int:
    from verinet.certify.engine import CertifyOptions
    from verinet.runs.sample import SampleJob

    eps, model, data, model_path, data_path = eps_and_inputs(args)
    options = CertifyOptions(eps=eps, radius=args.radius, timeout=args.timeout,
                             tolerance=args.tolerance, attacks=args.attacks,
                             milp=not args.no_milp, backend=args.backend, seed=args.seed,
                             search=args.radius_search)
    pac = None
    if args.pac:
        from verinet.cli.pac import pac_run_from_args

        pac = pac_run_from_args(args, model.network.input_shape, True, "pac-", args.pac_seed)
    clever = None
    if args.clever:
        from verinet.estimates.clever import CleverOptions

        clever = CleverOptions(nb_batches=args.clever_batches, batch_size=args.clever_batch_size)
    job = SampleJob("certify", certify=options, pac=pac, clever=clever)
    # A worker past twice its budget (and a minute) is stuck: kill it, run the sample again.
    return run_job(args, job, model, data, model_path, data_path,
                   default_task_timeout=2.0 * options.timeout + 60.0, warm=warm)
