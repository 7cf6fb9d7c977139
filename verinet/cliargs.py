"""argparse value types shared by the subcommands (one-line errors, exit code 2)."""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable, Iterable

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
