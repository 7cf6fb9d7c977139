"""Passes on the IR: pure functions from a Network to a Network."""

from __future__ import annotations

from verinet.ir import ops as O
from verinet.ir.graph import Network


def strip_softmax(net: Network) -> Network:
    """``net`` without a trailing Softmax over its whole output, named ``<name>/logits``
    (the argmax is the same: attacks and the estimates work on logits); ``net`` itself
    when it does not end in one.  Nothing is cached on ``net``: each call builds a new
    Network, so callers that need it repeatedly keep the result."""
    last = net.nodes[-1] if net.nodes else None
    if not (last is not None and isinstance(last.op, O.Softmax) and last.name == net.output_name
            and last.shape[last.op.axis] == net.n_outputs):
        return net
    return Network(net.input_name, net.input_shape, net.nodes[:-1], last.inputs[0],
                   f"{net.name}/logits")
