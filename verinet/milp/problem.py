"""A network over one box as the MILP queries see it, from the chain or from the graph.

:mod:`verinet.milp.solve` and :mod:`verinet.milp.radius` only need to encode the network
into a backend, replay a candidate in float64 and know sound output bounds;
:func:`chain_problem` (dense fully connected chains, :mod:`.encode`) and
:func:`graph_problem` (any graph with piecewise-linear nodes, :mod:`.graph_encode`)
provide them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from verinet.bounds.graph import GraphModel
from verinet.bounds.interval import LayerBounds
from verinet.ir.chain import Chain
from verinet.milp.backend import MilpBackend
from verinet.milp.encode import encode_chain
from verinet.milp.graph_encode import GraphEncoder, NodeBounds
from verinet.types import Box


class Encoded(Protocol):
    x: np.ndarray
    outputs: np.ndarray

    @property
    def n_binaries(self) -> int: ...


@dataclass(frozen=True)
class MilpProblem:
    """``encode(backend, box)`` adds the network's encoding over ``box`` (big-M from
    bounds sound on it); ``forward`` evaluates flat inputs in float64; ``output_lower``/
    ``output_upper`` are sound output bounds over the box."""

    n_inputs: int
    n_outputs: int
    output_lower: np.ndarray
    output_upper: np.ndarray
    encode: Callable[[MilpBackend, Box], Encoded]
    forward: Callable[[np.ndarray], np.ndarray]


def chain_problem(chain: Chain, bounds: LayerBounds) -> MilpProblem:
    return MilpProblem(chain.n_inputs, chain.n_outputs, bounds.output_lower,
                       bounds.output_upper, lambda be, box: encode_chain(be, chain, box, bounds),
                       chain.forward)


def graph_problem(gm: GraphModel, bounds: NodeBounds) -> MilpProblem:
    out_lo, out_hi = bounds[gm.output_name]
    return MilpProblem(gm.size(gm.input_name), gm.size(gm.output_name), out_lo, out_hi,
                       lambda be, box: GraphEncoder(be, gm, box, bounds).encode(),
                       gm.network.evaluate)
