"""Helpers shared by the estimates: the logit view of a network and norm parsing."""

from __future__ import annotations

import logging
import math
import numbers

from verinet.ir import ops as O
from verinet.ir.graph import Network
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
    """The network without a trailing Softmax over its whole output (the argmax is the
    same; CLEVER and ROBY work on logits, as the original codes do).  Cached on ``net``."""
    last = net.nodes[-1] if net.nodes else None
    if not (last is not None and isinstance(last.op, O.Softmax) and last.name == net.output_name
            and last.shape[last.op.axis] == net.n_outputs):
        return net
    cached = net.__dict__.get("_estimate_logits")
    if cached is None:
        cached = Network(net.input_name, net.input_shape, net.nodes[:-1], last.inputs[0],
                         f"{net.name}/logits")
        net.__dict__["_estimate_logits"] = cached
        log.info("network ends in Softmax: using the logits '%s'", last.inputs[0])
    return cached


def positive_int(value: object, what: str) -> int:
    """``value`` as an int >= 1, else a one-line :class:`InputError`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise InputError(f"{what} must be a positive integer, got {value!r}")
    return int(value)
