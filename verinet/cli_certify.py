"""``verinet certify [MODEL.onnx] --data FILE --eps E [--radius] ...``

Without a model (and without ``--data``) it runs on the bundled digits example
(:mod:`verinet.examples`).  The JSON report (``--out``) is rewritten atomically after
every sample, so an interruption or a later error keeps what is already computed; a
failure before the first sample leaves an existing file untouched.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from verinet.cliargs import number
from verinet.types import InputError

log = logging.getLogger("verinet")

def _names(text: str) -> tuple[str, ...]:
    from verinet.attacks import REGISTRY  # imported only when --attacks is given

    names = tuple(t for t in text.replace(",", " ").split() if t)
    bad = [n for n in names if n not in REGISTRY]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"unknown attack(s) {', '.join(bad) or '(none)'}; choose from "
            f"{', '.join(REGISTRY)}")
    return names


def add_parser(sub: Any, common: argparse.ArgumentParser, floats: Any) -> None:
    c = sub.add_parser("certify", parents=[common],
                       help="per-sample robustness sandwich [certified lower, attack upper]")
    c.add_argument("model", nargs="?", help="ONNX model (default: the bundled digits MLP)")
    c.add_argument("--data", help=".npz (x, y), .npy (label first) or .csv (label first); "
                   "default: the bundled digits samples")
    c.add_argument("--eps", type=number, help="L-inf radius to decide (raw input space, 0..1)")
    c.add_argument("--radius", action="store_true",
                   help="compute every sample's radius sandwich (exact when the gap <= tol)")
    c.add_argument("--tolerance", type=number, default=1e-3,
                   help="a radius is exact when upper - lower <= this (default 1e-3)")
    c.add_argument("--samples", type=int, help="number of samples (default: all)")
    c.add_argument("--start", type=int, default=0, help="index of the first sample")
    c.add_argument("--scale", type=number, help="divide the data by this (255 for pixels)")
    c.add_argument("--mean", type=floats, help="input normalisation mean (raw input space)")
    c.add_argument("--std", type=floats, help="input normalisation std")
    c.add_argument("--timeout", type=number, default=30.0, help="seconds per sample (30)")
    c.add_argument("--attacks", type=_names, default=("deepfool", "fmn", "pgd"),
                   help="comma list of attack names (fgsm, bim, pgd, cw-l2, cw-linf, deepfool, "
                        "fmn, ead, lbfgs, boundary; default deepfool,fmn,pgd)")
    c.add_argument("--no-milp", action="store_true", help="skip the exact MILP stage")
    c.add_argument("--backend", choices=("highs", "pulp"), default="highs", help="MILP solver")
    c.add_argument("--out", help="JSON report (rewritten after every sample)")
    c.add_argument("--csv", help="CSV report")
    c.add_argument("--plot", help="PNG of the sandwiches and robust-accuracy curves")
    c.add_argument("--seed", type=int, default=0, help="random seed (attacks, sampling)")
    c.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1)")
    c.add_argument("--no-check", action="store_true",
                   help="skip the IR-vs-ONNX equivalence check on load")
    c.add_argument("--no-progress", action="store_true", help="no progress bar")
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
    from verinet.cli_pac import add_pac_options

    add_pac_options(c, prefix="pac-")


def _inputs(args: argparse.Namespace) -> tuple[str, str]:
    if args.model is None:
        from verinet import examples

        if args.data is None:
            log.warning("no model given: using the bundled digits example")
            return str(examples.model_path()), str(examples.data_path())
        raise InputError("--data given without a model")
    if args.data is None:
        raise InputError("--data FILE is required with a model")
    return args.model, args.data


def cmd_certify(args: argparse.Namespace) -> int:
    from verinet import api
    from verinet.certify.engine import CertifyOptions
    from verinet.certify.run import certify
    from verinet.data import load_samples, validate_eps
    from verinet.report import certify as rep

    if args.eps is None and not args.radius:
        raise InputError("give --eps E, --radius, or both")
    eps = None if args.eps is None else validate_eps(args.eps)
    model_path, data_path = _inputs(args)
    model = api.load_model(model_path, mean=args.mean, std=args.std, check=not args.no_check)
    data = load_samples(data_path, n_inputs=model.n_inputs, n_classes=model.n_outputs,
                        scale=args.scale, samples=args.samples, start=args.start)
    options = CertifyOptions(eps=eps, radius=args.radius, timeout=args.timeout,
                             tolerance=args.tolerance, attacks=args.attacks,
                             milp=not args.no_milp, backend=args.backend, seed=args.seed)
    pac = None
    if args.pac:
        from verinet.cli_pac import pac_run_from_args

        pac = pac_run_from_args(args, model.network.input_shape, True, "pac-", args.pac_seed)
    clever = None
    if args.clever:
        from verinet.estimates.clever import CleverOptions

        clever = CleverOptions(nb_batches=args.clever_batches, batch_size=args.clever_batch_size)
    on_sample = None if args.out is None else (lambda r: rep.write_json(r, args.out))
    report = certify(model.network, model.onnx_eval, data.x, data.y, options,
                     model_name=model_path, data_name=data_path, indices=data.indices,
                     on_sample=on_sample, progress=_progress(args, len(data)), pac=pac,
                     clever=clever)
    if args.out is not None:
        rep.write_json(report, args.out)
    if args.csv is not None:
        rep.write_csv(report, args.csv)
    if args.plot is not None:
        from verinet.report.plots import plot_report

        plot_report(report, args.plot)
    print(rep.format_table(report))
    return 0


def _progress(args: argparse.Namespace, total: int) -> Any:
    if args.no_progress:
        return None
    from tqdm import tqdm

    def wrap(it: Any) -> Any:
        return tqdm(it, total=total, desc="certify", unit="sample", file=sys.stderr,
                    disable=None, leave=False)

    return wrap
