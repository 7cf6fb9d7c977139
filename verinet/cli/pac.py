"""``verinet pac [MODEL.onnx] --data FILE --eps E [--radius] ...``: DeepPAC per sample.

DeepPAC (Li et al., ICSE 2022) learns an affine PAC model of the score differences from
samples of the L-inf ball and decides PAC-model robustness with an (error rate,
significance) guarantee, using forward passes only (see :mod:`verinet.pac`).  The report
(``--out``) has the schema of ``verinet certify``; the PAC radius is under
``radius.pac`` (raw input units) with its (epsilon, eta, sample counts).  Without a model
(and without ``--data``) it runs on the bundled digits example.  The same PAC options,
prefixed ``--pac-``, configure ``verinet certify --pac``.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from verinet.cli.options import add_seed, set_threads
from verinet.cli.options import number as _float
from verinet.cli.samples import (
    add_sample_options,
    eps_and_inputs,
    run_job,
    warm_start,
)

log = logging.getLogger("verinet")


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def add_pac_options(p: argparse.ArgumentParser, prefix: str = "") -> None:
    """The DeepPAC options (``--{prefix}epsilon`` ...); the paper's MNIST defaults."""
    g = p.add_argument_group("DeepPAC")
    g.add_argument(f"--{prefix}epsilon", type=_float, default=0.01,
                   help="error rate of the PAC guarantee, in (0, 1) (default 0.01)")
    g.add_argument(f"--{prefix}eta", type=_float, default=0.001,
                   help="significance of the PAC guarantee, in (0, 1) (default 0.001)")
    g.add_argument(f"--{prefix}k1", type=_int, default=2000,
                   help="Phase 1 samples (coarse fit, default 2000)")
    g.add_argument(f"--{prefix}k2", type=_int, default=8000,
                   help="Phase 2 samples (focused re-fit, default 8000)")
    g.add_argument(f"--{prefix}k3", type=_int,
                   help="Phase 3 scenario samples (default: ceil(2/epsilon (ln(1/eta) + 1)))")
    g.add_argument(f"--{prefix}kappa", type=_int,
                   help="coefficients re-fitted in Phase 2 (default: from k2, epsilon, eta)")
    g.add_argument(f"--{prefix}phase1", choices=("lawson", "lstsq", "lp"), default="lawson",
                   help="Phase 1 fit: least squares + Lawson steps towards the artifact's "
                   "Chebyshev LP (default), least squares only, or the LP itself (slow)")
    g.add_argument(f"--{prefix}lawson-steps", type=_int, default=1,
                   help="Lawson steps of --phase1 lawson (default 1)")
    g.add_argument(f"--{prefix}bracket", choices=("lawson", "lstsq", "lp"),
                   help="radius search: binary search with this cheaper Phase 1 first, then "
                   "settle the result with --phase1 (e.g. --phase1 lp --bracket lawson)")
    g.add_argument(f"--{prefix}grid", type=_float, default=1.0 / 255.0,
                   help="grid step of the radius search, raw input units (default 1/255)")
    g.add_argument(f"--{prefix}continuous", action="store_true",
                   help="refine the PAC radius between grid points")
    g.add_argument(f"--{prefix}radius-tolerance", type=_float, default=1e-4,
                   help="final bracket width of --continuous (default 1e-4)")
    g.add_argument(f"--{prefix}coef-bound", type=_float, default=100.0,
                   help="box [-b, b] on every PAC model coefficient, intercept included "
                   "(default 100, the artifact's; raise it for networks whose scores spread "
                   "over hundreds, e.g. distilled students deployed at T = 1)")
    g.add_argument(f"--{prefix}dtype", choices=("float32", "float64"), default="float32",
                   help="forward passes of the samples (default float32)")


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register the ``pac`` subcommand."""
    c = sub.add_parser("pac", parents=[common],
                       help="DeepPAC: PAC-model robustness and the maximum PAC radius")
    add_sample_options(c, mean_help="; also the PAC features' normalisation",
                       plot_help="PNG of the radii")
    c.add_argument("--eps", type=_float, help="L-inf radius of the PAC verdict (raw, 0..1)")
    c.add_argument("--radius", action="store_true", help="search the maximum PAC radius")
    add_seed(c, help="sampling seed (default 0, as DeepPAC)")
    add_pac_options(c)


def pac_run_from_args(args: argparse.Namespace, input_shape: tuple[int, ...], radius: bool,
                      prefix: str = "", seed: int | None = None) -> Any:
    """The :class:`~verinet.pac.run.PacRun` the options describe."""
    from verinet.pac import FeatureMap, PacOptions, RadiusSearch
    from verinet.pac.run import PacRun

    def opt(name: str) -> Any:
        return getattr(args, prefix.replace("-", "_") + name)

    options = PacOptions(epsilon=opt("epsilon"), eta=opt("eta"), k1=opt("k1"), k2=opt("k2"),
                         k3=opt("k3"), kappa=opt("kappa"), phase1=opt("phase1"),
                         lawson_steps=opt("lawson_steps"), coef_bound=opt("coef_bound"),
                         seed=args.seed if seed is None else seed, dtype=opt("dtype"))
    search = RadiusSearch(opt("grid"), opt("continuous"), opt("radius_tolerance"),
                          opt("bracket")) if radius else None
    features = FeatureMap.normalisation(args.mean, args.std, input_shape)
    return PacRun(options, features, search)


def cmd_pac(args: argparse.Namespace) -> int:
    with warm_start(args) as warm:  # --ray: the cluster starts while the model loads
        set_threads(args.threads)  # imports torch: after the --ray start has begun
        return _pac(args, warm)


def _pac(args: argparse.Namespace, warm: object) -> int:
    from verinet.runs.sample import SampleJob

    eps, model, data, model_path, data_path = eps_and_inputs(args)
    run = pac_run_from_args(args, model.network.input_shape, args.radius)
    job = SampleJob("pac", pac=run, pac_eps=eps)
    return run_job(args, job, model, data, model_path, data_path, warm=warm)
