"""LP tightening of a graph's intermediate bounds, node by node (MIPVerify style).

The graph is encoded in order (:class:`~verinet.milp.graph_encode.GraphEncoder`); before a
nonlinear node is added, each unit of its input that the rule's relaxation would gain
from (``needs``: unstable ReLU units, crossed Clip kinks, overlapping MaxPool windows) gets
its lower and upper bound minimised over the LP relaxation of everything encoded so far.
The solves, their certification (row duals through
:func:`verinet.milp.certify.safe_lower_bound`) and the warm starts are
:mod:`verinet.milp.tighten`'s; the tightened bounds then give the next nodes' big-M.
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np
import torch

from verinet.bounds.graph import GraphModel
from verinet.bounds.graph.activations import LeakyReluRule, ReluRule
from verinet.milp.backend import make_backend
from verinet.milp.encode import ZERO
from verinet.milp.graph_encode import GraphEncoder, NodeBounds
from verinet.milp.tighten import SolveCtx, Tightening, tighten_units
from verinet.types import Box

log = logging.getLogger(__name__)


def tighten_graph(gm: GraphModel, box: Box, bounds: NodeBounds, backend: str = "highs",
                  time_budget: float | None = None) -> NodeBounds:
    """Tighter sound bounds than ``bounds`` (sound for ``box``); units not reached within
    ``time_budget`` seconds keep theirs."""
    out = {n: (lo.copy(), hi.copy()) for n, (lo, hi) in bounds.items()}
    t0 = time.monotonic()
    budget = math.inf if time_budget is None else float(time_budget)
    ctx = SolveCtx(make_backend(backend), Tightening.LP, 10.0, t0 + budget)
    enc = GraphEncoder(ctx.backend, gm, box, out)  # reads ``out`` as it is tightened
    for name in gm.order[1:]:
        rule = enc.rules[name]
        z = gm.inputs[name][0]
        if not getattr(rule, "linear", False) and z != gm.input_name and ctx.remaining() > 0:
            _tighten_node(ctx, enc, rule, z)
        enc.add(name)
    log.info("graph LP tightening: %d solves in %.2fs", ctx.solves, time.monotonic() - t0)
    return out


def _tighten_node(ctx: SolveCtx, enc: GraphEncoder, rule: object, z: str) -> None:
    lo, hi = enc.bounds[z]
    needs = rule.needs(torch.from_numpy(lo), torch.from_numpy(hi))  # type: ignore[attr-defined]
    cols = enc.cols[z]
    units = np.flatnonzero(needs.reshape(-1).numpy() & (cols != ZERO))  # ZERO: exactly 0
    tighten_units(ctx, cols, lo, hi, units, phased=isinstance(rule, (ReluRule, LeakyReluRule)))
