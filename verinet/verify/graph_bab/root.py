"""The root of branch and bound on the graph: one box's bounds and the units a split fixes.

Splits fix the phase of ReLU/LeakyReLU units that are unstable at the root (their
pre-activation interval contains 0): active (``z >= 0``) or inactive (``z <= 0``); both
halves make the unit's relaxation exact.  Units are keyed by their pre-activation node
``z`` (keyed by ``(node, unit)`` throughout): per split node, ``index`` lists the flat
unit indices, and a domain's flat vectors over all of them put node ``i`` at
``offsets[i]``.

Intermediate bounds stay the root's (CROWN, or alpha-CROWN per layer with
``tighten``), each domain only clamping its split units; the split constraints enter the
objective through beta multipliers (:mod:`.bound`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from verinet.bounds.graph import GraphModel, GraphOptions, build_state
from verinet.bounds.graph.activations import LeakyReluRule, ReluRule
from verinet.bounds.graph.affine import ConvRule, LinearRule
from verinet.bounds.graph.bounds import cast_state
from verinet.bounds.graph.propagate import DEFAULT_OPTIONS, GraphState

SPLITTABLE = (ReluRule, LeakyReluRule)


@dataclass(frozen=True)
class GraphRoot:
    """``state`` (float64, one box) and ``low`` (its float32 copy for the optimisation
    surrogate); ``nodes[i]`` a split node and ``inputs[i]`` its pre-activation node;
    ``index[i]`` the root-unstable units of that node; ``bias`` (U,) each unit's bias in
    its pre-activation node (BaBSR); ``affine_leaves``: every nonlinear node is
    splittable, so a domain with every unit split is affine."""

    gm: GraphModel
    state: GraphState
    low: GraphState
    nodes: tuple[str, ...]
    inputs: tuple[str, ...]
    index: tuple[Tensor, ...]
    offsets: tuple[int, ...]
    bias: Tensor
    affine_leaves: bool

    @property
    def size(self) -> int:
        return self.offsets[-1]

    def block(self, flat: Tensor, i: int) -> Tensor:
        """Node ``i``'s part of a (N, size) per-domain vector."""
        return flat[:, self.offsets[i]: self.offsets[i + 1]]

    def node_at(self, pos: Tensor) -> Tensor:
        """Split node of flat positions."""
        return torch.searchsorted(torch.tensor(self.offsets[1:]), pos, right=True)

    def unit_bounds(self) -> tuple[Tensor, Tensor]:
        """Root bounds (U,) of the split units."""
        lo = [self.state.lo[z].reshape(-1)[i] for z, i in zip(self.inputs, self.index,
                                                               strict=True)]
        hi = [self.state.hi[z].reshape(-1)[i] for z, i in zip(self.inputs, self.index,
                                                               strict=True)]
        empty = torch.zeros(0, dtype=torch.float64)
        return torch.cat(lo) if lo else empty, torch.cat(hi) if hi else empty


def make_root(gm: GraphModel, lo: Tensor, hi: Tensor,
              options: GraphOptions = DEFAULT_OPTIONS) -> GraphRoot:
    """The root of one box ``lo``/``hi`` (n,) (float64)."""
    st = build_state(gm, lo.reshape(1, -1), hi.reshape(1, -1), options)
    nodes, inputs, index, biases = [], [], [], []
    offsets = [0]
    seen: set[str] = set()
    for n in gm.nonlinear():
        rule = st.rules[n]
        z = gm.inputs[n][0]
        if not isinstance(rule, SPLITTABLE) or z in seen:
            continue
        seen.add(z)
        z_lo, z_hi = st.lo[z].reshape(-1), st.hi[z].reshape(-1)
        idx = torch.nonzero((z_lo < 0) & (z_hi > 0)).reshape(-1)
        nodes.append(n)
        inputs.append(z)
        index.append(idx)
        offsets.append(offsets[-1] + len(idx))
        biases.append(_bias(st, z)[idx])
    affine = all(isinstance(st.rules[n], SPLITTABLE) for n in gm.nonlinear())
    bias = torch.cat(biases) if biases else torch.zeros(0, dtype=torch.float64)
    return GraphRoot(gm, st, cast_state(st, torch.float32), tuple(nodes), tuple(inputs),
                     tuple(index), tuple(offsets), bias, affine)


def _bias(st: GraphState, z: str) -> Tensor:
    """The bias of pre-activation node ``z`` per unit (0 where it has none)."""
    rule = st.rules[z]
    shape = st.gm.shape[z]
    off = getattr(rule, "offset", None)
    if isinstance(rule, (LinearRule, ConvRule)) and off is not None:
        return off.to(torch.float64).expand(shape).reshape(-1)
    return torch.zeros(st.gm.size(z), dtype=torch.float64)
