"""Brute-force exact oracle for tiny ReLU chains (test helper, not part of verinet).

The chain is affine on each activation region ``{x in box : sign pattern}``.  We
enumerate the feasible patterns depth-first (one ReLU at a time, pruning empty
regions with a feasibility LP) and solve one LP per region with
``scipy.optimize.linprog`` (HiGHS).  Exact up to the LP tolerance (~1e-9); only for
chains with at most ``MAX_RELUS`` ReLUs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linprog

from verinet.ir.chain import Chain, to_chain
from verinet.ir.graph import Network
from verinet.spec.property import Halfspaces, Property
from verinet.types import Box, Counterexample

MAX_RELUS = 16


@dataclass(frozen=True)
class Region:
    """``G x <= h`` (with the box) on which the output is ``M x + c``."""

    G: np.ndarray
    h: np.ndarray
    M: np.ndarray
    c: np.ndarray


def _feasible_point(G: np.ndarray, h: np.ndarray, box: Box) -> np.ndarray | None:
    """A point of ``{x in box : G x <= h}`` or ``None`` if it is empty."""
    n = box.dim
    res = linprog(np.zeros(n), A_ub=G if G.size else None, b_ub=h if G.size else None,
                  bounds=list(zip(box.lower, box.upper, strict=True)), method="highs")
    return np.asarray(res.x) if res.status == 0 else None


def regions(chain: Chain, box: Box) -> Iterator[Region]:
    """Every non-empty activation region of ``chain`` over ``box``."""
    if not chain.is_relu:
        raise ValueError("oracle handles ReLU chains only")
    if sum(a.size for a in chain.activations) > MAX_RELUS:
        raise ValueError(f"oracle limited to {MAX_RELUS} ReLUs")
    n = box.dim
    yield from _dfs(chain, box, 0, 0, np.eye(n), np.zeros(n), np.zeros((0, n)), np.zeros(0),
                    None, None, box.center)


def _dfs(chain: Chain, box: Box, k: int, j: int, P: np.ndarray, p: np.ndarray,
         G: np.ndarray, h: np.ndarray, Z: np.ndarray | None, zc: np.ndarray | None,
         witness: np.ndarray) -> Iterator[Region]:
    """Layer ``k``, unit ``j``; ``P x + p`` is the input of affine ``k``; ``Z x + zc``
    the pre-activation of layer ``k`` with units ``< j`` already rectified in place;
    ``witness`` is a point of the current region (it saves one LP per branching)."""
    affines = chain.affines
    if Z is None:
        W, b = affines[k].weight, affines[k].bias
        Z, zc = W @ P, W @ p + b
        if k == len(affines) - 1:
            yield Region(G, h, Z, zc)
            return
    assert zc is not None
    if j == Z.shape[0]:
        yield from _dfs(chain, box, k + 1, 0, Z, zc, G, h, None, None, witness)
        return
    for active in (True, False):
        sign = -1.0 if active else 1.0  # active: -z <= 0 ; inactive: z <= 0
        G2 = np.vstack([G, sign * Z[j]])
        h2 = np.append(h, -sign * zc[j])
        point = witness if sign * (Z[j] @ witness + zc[j]) <= 0 else _feasible_point(G2, h2, box)
        if point is None:
            continue
        Z2, zc2 = Z.copy(), zc.copy()
        if not active:
            Z2[j], zc2[j] = 0.0, 0.0
        yield from _dfs(chain, box, k, j + 1, P, p, G2, h2, Z2, zc2, point)


def _lp_min(cost: np.ndarray, A_ub: np.ndarray, b_ub: np.ndarray,
            bounds: list[tuple[float, float]]) -> tuple[float, np.ndarray] | None:
    res = linprog(cost, A_ub=A_ub if A_ub.size else None, b_ub=b_ub if A_ub.size else None,
                  bounds=bounds, method="highs")
    if res.status != 0:
        return None
    return float(res.fun), np.asarray(res.x)


def exact_min_violation(chain: Chain, box: Box, unsafe: Halfspaces) -> tuple[float, np.ndarray]:
    """``min_{x in box} max_i (A_i f(x) - b_i)`` and a minimiser (0 for no rows)."""
    n, m = box.dim, unsafe.A.shape[0]
    if m == 0:
        return 0.0, box.center
    best, arg = np.inf, box.center
    bounds = list(zip(box.lower, box.upper, strict=True)) + [(None, None)]
    cost = np.zeros(n + 1)
    cost[-1] = 1.0
    for r in regions(chain, box):
        # A (M x + c) - b - t <= 0 ; G x <= h
        rows = np.hstack([unsafe.A @ r.M, -np.ones((m, 1))])
        rhs = unsafe.b - unsafe.A @ r.c
        if r.G.size:
            rows = np.vstack([rows, np.hstack([r.G, np.zeros((r.G.shape[0], 1))])])
            rhs = np.concatenate([rhs, r.h])
        got = _lp_min(cost, rows, rhs, bounds)
        if got is not None and got[0] < best:
            best, arg = got[0], got[1][:n]
    return float(best), arg


def exact_output_range(chain: Chain, box: Box, out_index: int) -> tuple[float, float]:
    """Exact ``(min, max)`` of output ``out_index`` over ``box``."""
    lo, hi = np.inf, -np.inf
    bounds = list(zip(box.lower, box.upper, strict=True))
    for r in regions(chain, box):
        for sign in (1.0, -1.0):
            got = _lp_min(sign * r.M[out_index], r.G, r.h, bounds)
            if got is None:
                continue
            v = sign * got[0] + r.c[out_index]
            lo, hi = min(lo, v), max(hi, v)
    return float(lo), float(hi)


def exact_preactivation_range(chain: Chain, box: Box, layer: int, unit: int) -> tuple[float, float]:
    """Exact range of unit ``unit`` of affine layer ``layer``."""
    return exact_output_range(Chain(chain.layers[: 2 * layer + 1]), box, unit)


def exact_radius(chain: Chain, x0: np.ndarray, label: int, domain: Box) -> float:
    """The exact minimal L-inf distance from ``x0`` to a point of ``domain`` where some
    class ``j != label`` scores at least as high as ``label`` (``inf`` if none)."""
    n = domain.dim
    x0 = np.asarray(x0, dtype=np.float64).reshape(-1)
    cost = np.zeros(n + 1)
    cost[-1] = 1.0
    bounds = list(zip(domain.lower, domain.upper, strict=True)) + [(0.0, None)]
    eye = np.eye(n)
    ball = np.vstack([np.hstack([eye, -np.ones((n, 1))]), np.hstack([-eye, -np.ones((n, 1))])])
    ball_rhs = np.concatenate([x0, -x0])
    best = np.inf
    for r in regions(chain, domain):
        for j in range(r.M.shape[0]):
            if j == label:
                continue
            # (M_l - M_j) x <= c_j - c_l  (class j at least as high as the label)
            rows = [ball, np.append(r.M[label] - r.M[j], 0.0)[None, :]]
            rhs = [ball_rhs, np.array([r.c[j] - r.c[label]])]
            if r.G.size:
                rows.append(np.hstack([r.G, np.zeros((r.G.shape[0], 1))]))
                rhs.append(r.h)
            got = _lp_min(cost, np.vstack(rows), np.concatenate(rhs), bounds)
            if got is not None:
                best = min(best, got[0])
    return float(best)


def check_complete_search(net: Network, prop: Property, proven: bool,
                          counterexample: Counterexample | None, margin: float = 1e-6) -> None:
    """A complete search's outcome against the oracle: proven iff every term's exact
    minimum violation is positive (up to ``margin``), a confirmed counterexample inside its
    term's box whenever some term is reachable, never both."""
    chain = to_chain(net)
    exact = [exact_min_violation(chain, t.box, t.unsafe)[0] for t in prop.terms]
    assert not (proven and counterexample is not None)
    if all(e > margin for e in exact):
        assert proven
    if any(e < -margin for e in exact):
        assert not proven
        assert counterexample is not None
    if counterexample is not None:
        term = prop.terms[counterexample.term]
        assert counterexample.confirmed and term.box.contains(counterexample.x)
        assert term.unsafe.violation(net.evaluate(counterexample.x)) <= 0
    if proven:
        assert all(e > -margin for e in exact)
