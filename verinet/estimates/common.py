"""Helpers shared by the estimates: the logit view of a network and norm parsing."""

from __future__ import annotations

import logging
import math
import numbers

from verinet.ir.graph import Network
from verinet.ir.passes import strip_softmax
from verinet.types import InputError

log = logging.getLogger(__name__)

#: Perturbation norm p -> dual norm q of the gradient (1/p + 1/q = 1).
DUAL = {1.0: math.inf, 2.0: 2.0, math.inf: 1.0}
_NAMES = {"1": 1.0, "l1": 1.0, "2": 2.0, "l2": 2.0, "inf": math.inf, "linf": math.inf,
          "li": math.inf}


def parse_norm(norm: object) -> float:
    """``1``, ``2`` or ``inf`` (numbers or the strings ``"1" "l1" "2" "l2" "inf" "linf"``)
    as a float; anything else raises a one-line :class:`InputError`."""
    if isinstance(norm, str):
        key = norm.strip().lower()
        if key in _NAMES:
            return _NAMES[key]
    elif isinstance(norm, numbers.Real) and not isinstance(norm, bool):
        if float(norm) in DUAL:
            return float(norm)
    raise InputError(f"norm must be 1, 2 or inf, got {norm!r}")


def norm_name(p: float) -> str:
    return "inf" if math.isinf(p) else str(int(p))


def logit_network(net: Network) -> Network:
    """The network without a trailing Softmax over its whole output
    (:func:`~verinet.ir.passes.strip_softmax`; CLEVER and ROBY work on logits, as the
    original codes do)."""
    logits = strip_softmax(net)
    if logits is not net:
        log.info("network ends in Softmax: using the logits '%s'", logits.output_name)
    return logits


def positive_int(value: object, what: str) -> int:
    """``value`` as an int >= 1, else a one-line :class:`InputError`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise InputError(f"{what} must be a positive integer, got {value!r}")
    return int(value)
