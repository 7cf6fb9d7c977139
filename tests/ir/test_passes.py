"""IR passes: stripping a trailing Softmax keeps the logits and caches nothing."""

from __future__ import annotations

import numpy as np

from tests.nets import random_layers, relu_network
from verinet.ir import ops as O
from verinet.ir.graph import Network, Node
from verinet.ir.passes import strip_softmax


def _with_softmax(net: Network, axis: int) -> Network:
    return Network(net.input_name, net.input_shape,
                   net.nodes + (Node("p", O.Softmax(axis), (net.output_name,),
                                     net.output_shape),), "p", "soft")


def test_trailing_softmax_is_stripped_without_caching() -> None:
    net = relu_network(random_layers(np.random.default_rng(0), [3, 5, 4]))
    soft = _with_softmax(net, 1)
    before = dict(soft.__dict__)
    logits = strip_softmax(soft)
    assert logits.output_name == net.output_name and logits.name == "soft/logits"
    assert logits.nodes == net.nodes
    x = np.random.default_rng(1).uniform(size=(6, 3))
    np.testing.assert_array_equal(logits.evaluate(x), net.evaluate(x))
    assert strip_softmax(soft) is not logits  # rebuilt: nothing kept on ``soft``
    assert soft.__dict__.keys() == before.keys()


def test_other_networks_are_returned_as_they_are() -> None:
    net = relu_network(random_layers(np.random.default_rng(2), [3, 4]))
    assert strip_softmax(net) is net
    over_batch = _with_softmax(net, 0)  # not over the whole output: kept
    assert strip_softmax(over_batch) is over_batch
