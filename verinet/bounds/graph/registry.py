"""The registry of bound rules: one builder per IR op class.

A builder takes the node's :class:`~verinet.bounds.graph.model.NodeInfo` and returns its
rule, or raises :class:`~verinet.bounds.graph.model.RuleError` with the reason it cannot
bound this node (an input-dependent divisor, a negative LeakyReLU slope, ...).  An op
class missing here is unsupported by the graph engine: :data:`UNSUPPORTED` says why, and
``tests/bounds/graph/test_registry.py`` lists what the engine lacks.
"""

from __future__ import annotations

from collections.abc import Callable

from verinet.bounds.graph import activations as act
from verinet.bounds.graph import affine as aff
from verinet.bounds.graph.maxpool import build_maxpool
from verinet.bounds.graph.model import NodeInfo, RuleError
from verinet.ir import ops as O

RULES: dict[type, Callable[[NodeInfo], object]] = {
    O.Linear: aff.build_linear,
    O.Conv: aff.build_conv,
    O.ChannelAffine: aff.build_channel_affine,
    O.Binary: aff.build_binary,
    O.Reshape: aff.build_reshape,
    O.Transpose: aff.build_transpose,
    O.Concat: aff.build_concat,
    O.AveragePool: aff.build_avgpool,
    O.GlobalAveragePool: aff.build_global_avgpool,
    O.MaxPool: build_maxpool,
    O.Relu: act.build_relu,
    O.LeakyRelu: act.build_leaky,
    O.Clip: act.build_clip,
    O.Sigmoid: act.build_sigmoid,
    O.Tanh: act.build_tanh,
}

UNSUPPORTED: dict[type, str] = {
    O.Softmax: "softmax inside the network has no bound rule (a trailing one is stripped "
               "on import)",
}


def build_rule(info: NodeInfo) -> object:
    """The rule of one input-dependent node (raises ``RuleError`` when there is none)."""
    builder = RULES.get(type(info.op))
    if builder is None:
        raise RuleError(UNSUPPORTED.get(type(info.op), "no bound rule for this op"))
    return builder(info)
