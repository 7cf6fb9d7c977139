"""argparse value types shared by the subcommands (one-line errors, exit code 2), and the
options several subcommands declare, each declared once here (their choices come from
the engines' own constants, imported without the engines)."""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable, Iterable

from verinet.types import InputError

_NETWORK = re.compile(r"([A-Za-z][A-Za-z0-9_]*)=(.+)")


def number(text: str) -> float:
    """Any float (range checks belong to the option objects, with their own messages)."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def positive_number(text: str) -> float:
    v = number(text)
    if not math.isfinite(v) or v <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text}")
    return v


def numbers(text: str) -> list[float]:
    """A comma- or space-separated list of finite numbers (``--mean``, ``--std``)."""
    try:
        vals = [float(t) for t in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not vals or not all(math.isfinite(v) for v in vals):
        raise argparse.ArgumentTypeError(f"need finite numbers, got {text!r}")
    return vals


def names(what: str, choices: Callable[[], Iterable[str]]) -> Callable[[str], tuple[str, ...]]:
    """A comma- or space-separated list of names from ``choices()`` (called when an option
    is parsed, so a heavy registry is imported only when the option is given)."""

    def parse(text: str) -> tuple[str, ...]:
        known = tuple(choices())
        got = tuple(t for t in text.replace(",", " ").split() if t)
        bad = [n for n in got if n not in known]
        if bad or not got:
            raise argparse.ArgumentTypeError(
                f"unknown {what}(s) {', '.join(bad) or '(none)'}; choose from "
                f"{', '.join(known)}")
        return got

    return parse


def network_spec(text: str) -> tuple[str, str]:
    """``--network NAME=PATH``: a network declared by a VNN-LIB 2.0 query and its file."""
    m = _NETWORK.fullmatch(text)
    if m is None:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH (a declared network name and "
                                         f"its ONNX file), got {text!r}")
    return m.group(1), m.group(2)


# -- the shared options ------------------------------------------------------------------

LAYOUT_HELP = ("order of each sample's values in the file: chw (default) = the model's own "
               "flat input order, taken as is; hwc = (row, col, channel) interleaved, as in "
               "CIFAR CSVs, reordered to the model's NCHW (1, C, H, W) input")


def add_model_and_data(p: argparse.ArgumentParser) -> None:
    """``MODEL`` (optional: the bundled example) and ``--data``."""
    p.add_argument("model", nargs="?", help="ONNX model (default: the bundled digits MLP)")
    p.add_argument("--data", help=".npz (x, y), .npy (label first) or .csv (label first); "
                   "default: the bundled digits samples")


def add_selection(p: argparse.ArgumentParser) -> None:
    """``--samples``, ``--start`` and ``--scale``: which samples of the data, and their
    scale (see :func:`verinet.data.load_samples`)."""
    p.add_argument("--samples", type=int, help="number of samples (default: all)")
    p.add_argument("--start", type=int, default=0, help="index of the first sample")
    p.add_argument("--scale", type=number, help="divide the data by this (255 for pixels)")


def add_normalisation(p: argparse.ArgumentParser,
                      mean: str = "input normalisation mean (raw input space)",
                      std: str = "input normalisation std") -> None:
    """``--mean`` and ``--std`` (lists of numbers), with these help texts."""
    p.add_argument("--mean", type=numbers, help=mean)
    p.add_argument("--std", type=numbers, help=std)


def add_layout(p: argparse.ArgumentParser) -> None:
    """``--layout chw|hwc`` (see :func:`verinet.data.load_samples`)."""
    p.add_argument("--layout", choices=("chw", "hwc"), default="chw", help=LAYOUT_HELP)


def add_outputs(p: argparse.ArgumentParser, *, out: str, plot: str) -> None:
    """The report outputs ``--out`` (JSON), ``--csv`` and ``--plot`` (PNG), checked before
    any work by :func:`verinet.report.paths.check_outputs`."""
    p.add_argument("--out", help=out)
    p.add_argument("--csv", help="CSV report")
    p.add_argument("--plot", help=plot)


def add_backend(p: argparse.ArgumentParser) -> None:
    """``--backend``: the MILP solver (:data:`verinet.milp.MILP_BACKENDS`)."""
    from verinet.milp import MILP_BACKENDS

    p.add_argument("--backend", choices=MILP_BACKENDS, default="highs", help="MILP solver")


def add_seed(p: argparse.ArgumentParser, help: str, default: int = 0) -> None:
    """``--seed`` (an integer; what it seeds is the command's ``help``)."""
    p.add_argument("--seed", type=int, default=default, help=help)


def add_threads(p: argparse.ArgumentParser, help: str = "torch intra-op threads (1)") -> None:
    """``--threads``: torch intra-op threads (applied by :func:`set_threads`)."""
    p.add_argument("--threads", type=int, default=1, help=help)


def set_threads(n: int) -> None:
    """Apply ``--threads`` (imports torch)."""
    if n < 1:
        raise InputError(f"--threads must be at least 1, got {n}")
    import torch

    torch.set_num_threads(n)


def add_no_check(p: argparse.ArgumentParser) -> None:
    """``--no-check``: skip the IR-vs-ONNX equivalence check on load."""
    p.add_argument("--no-check", action="store_true",
                   help="skip the IR-vs-ONNX equivalence check on load")
