"""Thin adapters from the portfolio to the bound and MILP engines.

Kept apart so the portfolio reads as a strategy and the engines keep their own APIs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from verinet.bounds.crown import crown_bounds, crown_layer_bounds
from verinet.bounds.interval import LayerBounds
from verinet.ir.chain import Chain
from verinet.spec.property import Term
from verinet.types import Box, Status
from verinet.verify.deadline import Deadline
from verinet.verify.input_bab import Bounder

if TYPE_CHECKING:
    from verinet.bounds.graph import GraphModel


def crown_lower(chain: Chain, lo: np.ndarray, hi: np.ndarray, A: np.ndarray) -> np.ndarray:
    """Sound lower bounds (T, k) of ``A_t f(x)`` over each term's box."""
    return crown_bounds(chain, lo, hi, A).lower


def alpha_crown_lower(
    chain: Chain, lo: np.ndarray, hi: np.ndarray, A: np.ndarray, deadline: Deadline
) -> np.ndarray:
    """alpha-CROWN lower bounds (T, k); falls back to CROWN's when out of time."""
    from verinet.bounds.alpha import alpha_crown_bounds

    if deadline.remaining() < 1.0:
        return crown_lower(chain, lo, hi, A)
    return alpha_crown_bounds(chain, lo, hi, A).lower


def by_box(lo: np.ndarray, hi: np.ndarray,
           A: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Terms (T, n) boxes and (T, k, m) rows grouped by identical box: ``(lo_u, hi_u, C)``
    with one box per group and all its terms' rows (U, G k, m), and ``where`` (T,): the
    group of each term (its rows are block ``position`` of the group's, in term order)."""
    keys: dict[bytes, int] = {}
    where = np.empty(len(lo), dtype=np.int64)
    for t in range(len(lo)):
        where[t] = keys.setdefault(lo[t].tobytes() + hi[t].tobytes(), len(keys))
    first = [int(np.flatnonzero(where == g)[0]) for g in range(len(keys))]
    size = max(int((where == g).sum()) for g in range(len(keys)))
    T, k, m = A.shape
    C = np.zeros((len(keys), size * k, m))
    slot = np.zeros(T, dtype=np.int64)
    for g in range(len(keys)):
        for j, t in enumerate(np.flatnonzero(where == g)):
            C[g, j * k:(j + 1) * k] = A[t]
            slot[t] = j
    return lo[first], hi[first], C, np.stack([where, slot], axis=1)


def _ungroup(lower: np.ndarray, where: np.ndarray, k: int) -> np.ndarray:
    return np.stack([lower[g, j * k:(j + 1) * k] for g, j in where])


def graph_crown_lower(gm: GraphModel, lo: np.ndarray, hi: np.ndarray,
                      A: np.ndarray) -> np.ndarray:
    """Sound lower bounds (T, k) of ``A_t f(x)`` over each term's box, on the graph (terms
    that share a box are bounded in one pass)."""
    from verinet.bounds.graph import graph_crown

    lo_u, hi_u, C, where = by_box(lo, hi, A)
    return _ungroup(graph_crown(gm, lo_u, hi_u, C).lower, where, A.shape[1])


def graph_alpha_crown_lower(gm: GraphModel, lo: np.ndarray, hi: np.ndarray, A: np.ndarray,
                            deadline: Deadline) -> np.ndarray:
    """alpha-CROWN lower bounds (T, k) on the graph (the ascent stops at the deadline)."""
    from verinet.bounds.graph import graph_alpha_crown

    lo_u, hi_u, C, where = by_box(lo, hi, A)
    res = graph_alpha_crown(gm, lo_u, hi_u, C, stop=deadline.expired)
    return _ungroup(res.lower, where, A.shape[1])


def crown_bounder(chain: Chain) -> Bounder:
    """The batched bound function input-splitting BaB needs."""

    def bound(lo: np.ndarray, hi: np.ndarray, C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r = crown_bounds(chain, lo, hi, C)
        return r.lower, r.lower_coef

    return bound


def tightened_bounds(chain: Chain, box: Box, deadline: Deadline, backend: str) -> LayerBounds:
    """CROWN bounds, then LP tightening of the still-unstable units within the budget."""
    from verinet.milp.tighten import Tightening, tighten_bounds

    base = crown_layer_bounds(chain, box)
    budget = deadline.remaining() * 0.5
    return tighten_bounds(chain, box, base, Tightening.LP, backend=backend, time_budget=budget)


@dataclass(frozen=True)
class MilpTerm:
    status: Status
    bound: float
    x: np.ndarray | None


def graph_tightened_bounds(gm: GraphModel, box: Box, deadline: Deadline,
                          backend: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The graph's CROWN bounds of every node, then LP tightening of the units the
    nonlinear nodes need within half the remaining time."""
    from verinet.milp.graph_encode import graph_node_bounds
    from verinet.milp.graph_tighten import tighten_graph

    base = graph_node_bounds(gm, box)
    return tighten_graph(gm, box, base, backend, time_budget=deadline.remaining() * 0.5)


def graph_milp_term(gm: GraphModel, term: Term, bounds: dict[str, tuple[np.ndarray,
                                                                     np.ndarray]],
                    deadline: Deadline, backend: str) -> MilpTerm:
    """Decide one term by a MILP encoded from the graph within the remaining time."""
    from verinet.milp.problem import graph_problem
    from verinet.milp.solve import check_term

    out = check_term(graph_problem(gm, bounds), term.box, term.unsafe, backend,
                     time_limit=max(0.1, deadline.remaining()))
    return MilpTerm(out.status, float(out.bound), out.candidate)


def milp_term(
    chain: Chain, term: Term, bounds: LayerBounds, deadline: Deadline, backend: str
) -> MilpTerm:
    """Decide one term by MILP within the remaining time."""
    from verinet.milp.solve import milp_check_term

    out = milp_check_term(chain, term.box, term.unsafe, bounds, backend=backend,
                          time_limit=max(0.1, deadline.remaining()))
    return MilpTerm(out.status, float(out.bound), out.candidate)
