"""Thin adapters from the portfolio to the bound and MILP engines.

Kept apart so the portfolio reads as a strategy and the engines keep their own APIs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from verinet.bounds.crown import crown_bounds, crown_layer_bounds
from verinet.bounds.interval import LayerBounds
from verinet.ir.chain import Chain
from verinet.spec.property import Term
from verinet.types import Box, Status
from verinet.verify.deadline import Deadline
from verinet.verify.input_bab import Bounder


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


def milp_term(
    chain: Chain, term: Term, bounds: LayerBounds, deadline: Deadline, backend: str
) -> MilpTerm:
    """Decide one term by MILP within the remaining time."""
    from verinet.milp.solve import milp_check_term

    out = milp_check_term(chain, term.box, term.unsafe, bounds, backend=backend,
                          time_limit=max(0.1, deadline.remaining()))
    return MilpTerm(out.status, float(out.bound), out.candidate)
