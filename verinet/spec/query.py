"""A parsed query: the :class:`Property` and the networks it is stated over.

A VNN-LIB 1.0 file and a single-network 2.0 query are over one network.  A 2.0 query
over several networks is read as a property of their *composition* (see
:mod:`verinet.spec.vnnlib2_networks`): one shared input (the first network's inputs; the
others' are identified with them element-wise) and the concatenation of the networks'
flat outputs in declaration order, so output constraints mixing ``Y_f`` and ``Y_g`` are
ordinary rows over that vector.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from verinet.spec.property import Property
from verinet.types import PropertyError


@dataclass(frozen=True)
class DeclaredNetwork:
    """One ``declare-network``: its flat input/output sizes, where its outputs start in
    the concatenated output vector, and its relation to an earlier network, if any
    (``"equal-to"`` / ``"isomorphic-to"``, a hint: verinet treats networks alike)."""

    name: str
    n_inputs: int
    n_outputs: int
    output_offset: int = 0
    relation: str = ""
    related: str = ""


@dataclass(frozen=True)
class QueryVariable:
    """A declared tensor of a VNN-LIB 2.0 query as a satisfying assignment reports it:
    ``NAME TYPE [dims]`` and its elements, row-major, taken from the shared input
    (``kind`` "X") or the concatenated outputs ("Y") from ``offset`` on."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    kind: str
    offset: int

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def header(self) -> str:
        """The line that opens the tensor's values in a result: ``NAME TYPE [d1,...]``."""
        return f"{self.name} {self.dtype} [{','.join(map(str, self.shape))}]"


@dataclass(frozen=True)
class Query:
    """``property`` is over the shared input and the concatenated outputs of
    ``networks`` (declaration order; one unnamed network for VNN-LIB 1.0).
    ``variables``: a 2.0 query's declared tensors in declaration order (none for 1.0)."""

    property: Property
    networks: tuple[DeclaredNetwork, ...]
    variables: tuple[QueryVariable, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "networks", tuple(self.networks))
        object.__setattr__(self, "variables", tuple(self.variables))
        if not self.networks:
            raise PropertyError("a query is over at least one network")
        if sum(n.n_outputs for n in self.networks) != self.property.n_outputs:
            raise PropertyError("the networks' outputs do not add up to the property's")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n.name for n in self.networks)

    @property
    def multi(self) -> bool:
        return len(self.networks) > 1
