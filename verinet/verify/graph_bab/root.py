"""The root of branch and bound on the graph: one box's bounds and the units a split cuts.

A split cuts one unit's pre-activation interval ``[l, u]`` at a point ``m`` into
``[l, m]`` and ``[m, u]`` and re-relaxes both halves:

* ReLU/LeakyReLU units unstable at the root are cut at 0, which fixes their phase
  (active ``z >= 0`` or inactive ``z <= 0``) and makes their relaxation exact;
* Sigmoid/Tanh units (any non-flat interval) are cut at 0 when the interval contains it
  (that separates the convex and the concave part), else at the midpoint; repeated cuts
  narrow the interval further.

Units are keyed by ``(pre-activation node, unit)``: per split node, ``index`` lists the
flat unit indices, and a domain's flat vectors over all of them put node ``i`` at
``offsets[i]``.  Intermediate bounds stay the root's, each domain only narrowing its cut
units; the cut constraints enter the objective through beta multipliers (:mod:`.bound`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from verinet.bounds.graph import GraphModel, GraphOptions, build_state
from verinet.bounds.graph.activations import FLAT_WIDTH, LeakyReluRule, ReluRule, SmoothRule
from verinet.bounds.graph.affine import ConvRule, LinearRule
from verinet.bounds.graph.optimise import cast_state
from verinet.bounds.graph.propagate import DEFAULT_OPTIONS, GraphState

PHASED = (ReluRule, LeakyReluRule)       # cut at 0 once: exact halves
SPLITTABLE = (*PHASED, SmoothRule)       # every rule branch and bound can cut


@dataclass(frozen=True)
class GraphRoot:
    """``state`` (float64, one box) and ``low`` (its float32 copy for the optimisation
    surrogate); ``nodes[i]`` a split node and ``inputs[i]`` its pre-activation node;
    ``index[i]`` the units of that node a split may cut; ``bias`` (U,) each unit's bias in
    its pre-activation node (BaBSR); ``phased`` (U,) True for ReLU-like units (cut once, at
    0); ``affine_leaves``: every nonlinear node is ReLU-like, so a domain whose units are
    all cut is affine."""

    gm: GraphModel
    state: GraphState
    low: GraphState
    nodes: tuple[str, ...]
    inputs: tuple[str, ...]
    index: tuple[Tensor, ...]
    offsets: tuple[int, ...]
    bias: Tensor
    phased: Tensor
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

    def unit_params(self) -> Tensor:
        """CROWN's relaxation parameters (U, 2) of the split units."""
        out = []
        for n, idx in zip(self.nodes, self.index, strict=True):
            p = self.state.params[n]
            assert p is not None
            p = p.reshape(p.shape[0], -1)[:, idx].T
            out.append(torch.cat([p, torch.zeros_like(p)], dim=1)[:, :2])
        return torch.cat(out) if out else torch.zeros((0, 2), dtype=torch.float64)

    def unit_bounds(self) -> tuple[Tensor, Tensor]:
        """Root bounds (U,) of the split units."""
        lo = [self.state.lo[z].reshape(-1)[i] for z, i in zip(self.inputs, self.index,
                                                               strict=True)]
        hi = [self.state.hi[z].reshape(-1)[i] for z, i in zip(self.inputs, self.index,
                                                               strict=True)]
        empty = torch.zeros(0, dtype=torch.float64)
        return torch.cat(lo) if lo else empty, torch.cat(hi) if hi else empty


def make_root(gm: GraphModel, lo: Tensor, hi: Tensor,
              options: GraphOptions = DEFAULT_OPTIONS,
              stop: Callable[[], bool] | None = None) -> GraphRoot:
    """The root of one box ``lo``/``hi`` (n,) (float64); ``options.tighten`` optimises
    the intermediate bounds (``stop`` ends that early)."""
    st = build_state(gm, lo.reshape(1, -1), hi.reshape(1, -1), options, stop=stop)
    nodes, inputs, index, biases, phased = [], [], [], [], []
    offsets = [0]
    seen: set[str] = set()
    for n in gm.nonlinear():
        rule = st.rules[n]
        z = gm.inputs[n][0]
        if not isinstance(rule, SPLITTABLE) or z in seen:
            continue
        seen.add(z)
        z_lo, z_hi = st.lo[z].reshape(-1), st.hi[z].reshape(-1)
        if isinstance(rule, PHASED):
            idx = torch.nonzero((z_lo < 0) & (z_hi > 0)).reshape(-1)
        else:
            idx = torch.nonzero(z_hi - z_lo >= FLAT_WIDTH).reshape(-1)
        nodes.append(n)
        inputs.append(z)
        index.append(idx)
        offsets.append(offsets[-1] + len(idx))
        biases.append(_bias(st, z)[idx])
        phased.append(torch.full((len(idx),), isinstance(rule, PHASED)))
    affine = all(isinstance(st.rules[n], PHASED) for n in gm.nonlinear())
    bias = torch.cat(biases) if biases else torch.zeros(0, dtype=torch.float64)
    ph = torch.cat(phased) if phased else torch.zeros(0, dtype=torch.bool)
    return GraphRoot(gm, st, cast_state(st, torch.float32), tuple(nodes), tuple(inputs),
                     tuple(index), tuple(offsets), bias, ph, affine)


def _bias(st: GraphState, z: str) -> Tensor:
    """The bias of pre-activation node ``z`` per unit (0 where it has none)."""
    rule = st.rules[z]
    shape = st.gm.shape[z]
    off = getattr(rule, "offset", None)
    if isinstance(rule, (LinearRule, ConvRule)) and off is not None:
        return off.to(torch.float64).expand(shape).reshape(-1)
    return torch.zeros(st.gm.size(z), dtype=torch.float64)
