"""Exact leaves of graph branch and bound: an LP over the input.

When every root-unstable unit of a domain is split and every nonlinear node is a split
(ReLU/LeakyReLU) node, the network is affine on the domain ``D = {x in box : s_i z_i(x)
<= 0}``: every relaxation is exact, so one back-substitution gives each term row
``A_r f(x)`` and each split pre-activation ``z_i(x)`` as a linear function ``L(x)`` of the
input, up to its float slack ``sigma``.  Then, with ``tau`` the largest row violation,

    ``min tau  s.t.  L_r(x) - sigma_r - b_r <= tau,  s_i G_i(x) <= sigma_i,  x in box``

is a relaxation of the domain's problem (``D`` lies inside the relaxed polytope and every
row value is at least its ``L_r - sigma_r``), so a certified LP bound ``> PROOF_TOL``
(:func:`verinet.milp.certify.safe_lower_bound` on the solver's duals) proves the domain
safe; an infeasible LP is proven empty only by a certified elastic LP.  The minimiser of
an LP with ``tau <= 0`` is a candidate for the caller's replay, never a verdict.  The
constraint rows are dense in the input (one row per split unit).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from verinet.bounds.graph.propagate import backward, input_mag
from verinet.milp.backend import SolverStatus, make_backend
from verinet.milp.certify import safe_lower_bound
from verinet.milp.graph_encode import state_bounds
from verinet.milp.problem import graph_problem
from verinet.milp.solve import check_term
from verinet.spec.property import Halfspaces
from verinet.types import Box, Status
from verinet.verify.graph_bab.bound import split_relaxations, unit_intervals
from verinet.verify.graph_bab.root import GraphRoot

PROOF_TOL = 1e-9


def _linear(root: GraphRoot, lo: Tensor, hi: Tensor, target: str,
            A: Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``A . target(x) = coef x + const`` on the domain, up to ``sigma`` (each (K, ...))."""
    st = root.state
    intervals = unit_intervals(root, st, lo.reshape(1, -1), hi.reshape(1, -1))
    relax = split_relaxations(root, st, intervals, torch.zeros((1, root.size, 2),
                                                               dtype=torch.float64))
    coef, const, mag = backward(st, target, A, relax)
    sigma = st.slack(mag + input_mag(st, coef))
    return coef[0].numpy(), const[0].numpy(), sigma[0].numpy()


def _leaf_rows(root: GraphRoot, lo: Tensor, hi: Tensor, C: np.ndarray, b: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """The leaf's rows: ``F x + base`` (K rows: each ``L_r - sigma_r - b_r``, the term is
    violated where all are ``<= 0``) and the region ``D x <= rhs`` (None: no split)."""
    split = torch.where(lo >= 0, 1, -1).to(torch.int8)
    gm = root.gm
    out = gm.output_name
    A = torch.tensor(C, dtype=torch.float64).reshape((1, len(C)) + gm.shape[out])
    F, g, s_f = _linear(root, lo, hi, out, A)
    rows, rhs = [], []
    for i, z in enumerate(root.inputs):
        idx = root.index[i]
        if not len(idx):
            continue
        sgn = -root.block(split.reshape(1, -1), i)[0].to(torch.float64)  # active: -z <= 0
        E = torch.zeros((1, len(idx), gm.size(z)), dtype=torch.float64)
        E[0, torch.arange(len(idx)), idx] = sgn  # s_i z_i
        G, h, s_g = _linear(root, lo, hi, z, E.reshape((1, len(idx)) + gm.shape[z]))
        rows.append(G)
        rhs.append(s_g - h)
    if not rows:
        return F, g - s_f - b, None, None
    return F, g - s_f - b, np.concatenate(rows), np.concatenate(rhs)


def _input_box(root: GraphRoot) -> tuple[np.ndarray, np.ndarray]:
    st, name = root.state, root.gm.input_name
    return st.lo[name].reshape(-1).numpy(), st.hi[name].reshape(-1).numpy()


def decide_leaf(root: GraphRoot, lo: Tensor, hi: Tensor, C: np.ndarray, b: np.ndarray,
                time_limit: float, backend: str = "highs") -> tuple[bool, np.ndarray | None]:
    """(proven, candidate) for one domain whose ReLU-like units are all cut (``lo``/``hi``
    (U,) its intervals: each unit's phase is the sign of its interval) of the term with
    rows ``C`` (K, m), ``b`` (K,)."""
    F, base, D, rhs = _leaf_rows(root, lo, hi, C, b)
    lo, hi = _input_box(root)
    n = lo.size
    # tau's bounds: interval bounds of max_r (L_r - sigma_r - b_r) over the box
    t_lo = float(np.max(base + np.minimum(F * lo, F * hi).sum(1))) - 1.0
    t_hi = float(np.max(base + np.maximum(F * lo, F * hi).sum(1))) + 1.0
    be = make_backend(backend)
    be.add_vars(lo, hi)
    tau = be.add_vars([t_lo], [t_hi])
    K = len(C)
    obj_rows = sp.hstack([sp.csr_matrix(F), sp.csr_matrix(-np.ones((K, 1)))]).tocsr()
    be.add_rows(obj_rows, np.full(K, -np.inf), -base)
    if D is not None:
        be.add_rows(sp.hstack([sp.csr_matrix(D), sp.csr_matrix((len(D), 1))]).tocsr(),
                    np.full(len(D), -np.inf), rhs)
    be.set_objective(tau, [1.0])
    be.set_time_limit(max(0.1, time_limit))
    res = be.solve(relax=True)
    if res.status is SolverStatus.OPTIMAL and res.row_duals is not None:
        if safe_lower_bound(be.model(), res.row_duals) > PROOF_TOL:
            return True, None
        return False, None if res.x is None else np.asarray(res.x[:n])
    if res.status is SolverStatus.INFEASIBLE and D is not None:
        return _empty(D, rhs, lo, hi, backend, time_limit), None
    return False, None


def leaf_reach(root: GraphRoot, lo: Tensor, hi: Tensor, C: np.ndarray, b: np.ndarray,
               x0: np.ndarray, time_limit: float, backend: str = "highs") -> float:
    """A certified lower bound on the L-inf distance from ``x0`` to the points of the
    leaf (inside the root's box) that violate the term: the LP ``min t`` s.t. the term's
    rows ``<= 0``, the leaf's region, ``|x - x0| <= t``, bounded through its duals
    (:func:`verinet.milp.certify.safe_lower_bound`); 0 when the LP is not solved."""
    F, base, D, rhs = _leaf_rows(root, lo, hi, C, b)
    lo, hi = _input_box(root)
    n = lo.size
    x0 = np.asarray(x0, dtype=np.float64).reshape(-1)
    top = float(np.max(np.maximum(x0 - lo, hi - x0)))
    be = make_backend(backend)
    be.add_vars(lo, hi)
    t = be.add_vars([0.0], [top])
    eye = sp.identity(n, format="csr")
    ones = sp.csr_matrix(-np.ones((n, 1)))
    parts = [(sp.hstack([sp.csr_matrix(F), sp.csr_matrix((len(F), 1))]), -base),
             (sp.hstack([eye, ones]), x0), (sp.hstack([-eye, ones]), -x0)]
    if D is not None:
        parts.append((sp.hstack([sp.csr_matrix(D), sp.csr_matrix((len(D), 1))]), rhs))
    M = sp.vstack([m for m, _ in parts]).tocsr()
    upper = np.concatenate([u for _, u in parts])
    be.add_rows(M, np.full(len(upper), -np.inf), upper)
    be.set_objective(t, [1.0])
    be.set_time_limit(max(0.1, time_limit))
    res = be.solve(relax=True)
    if res.status is not SolverStatus.OPTIMAL or res.row_duals is None:
        return 0.0
    return max(0.0, float(safe_lower_bound(be.model(), res.row_duals)))


def _empty(D: np.ndarray, rhs: np.ndarray, lo: np.ndarray, hi: np.ndarray, backend: str,
           time_limit: float) -> bool:
    """True only if a certified LP shows ``{x in box : D x <= rhs}`` is empty: ``min e``
    s.t. ``D x - e <= rhs`` is feasible (``e`` large) and its bound is ``> 0``."""
    be = make_backend(backend)
    be.add_vars(lo, hi)
    span = np.abs(D) @ np.maximum(np.abs(lo), np.abs(hi)) + np.abs(rhs)
    e = be.add_vars([0.0], [float(span.max()) + 1.0])
    be.add_rows(sp.hstack([sp.csr_matrix(D), sp.csr_matrix(-np.ones((len(D), 1)))]).tocsr(),
                np.full(len(D), -np.inf), rhs)
    be.set_objective(e, [1.0])
    be.set_time_limit(max(0.1, time_limit))
    res = be.solve(relax=True)
    if res.status is not SolverStatus.OPTIMAL or res.row_duals is None:
        return False
    return safe_lower_bound(be.model(), res.row_duals) > 0.0


def decide_leaf_milp(root: GraphRoot, lo: Tensor, hi: Tensor, C: np.ndarray, b: np.ndarray,
                     time_limit: float, backend: str = "highs"
                     ) -> tuple[bool, np.ndarray | None]:
    """(proven, candidate) for a domain whose split units are all cut, on graphs with
    other piecewise-linear nodes (MaxPool, Clip): the graph's MILP
    (:mod:`verinet.milp.graph_encode`) over the root's box, with the root's sound bounds
    and each cut unit's interval narrowed to the domain's, decides it exactly (the cut
    units are stable there, the remaining nodes take binaries)."""
    gm = root.gm
    bounds = state_bounds(root.state)
    for i, z in enumerate(root.inputs):
        idx = root.index[i].numpy()
        if not len(idx):
            continue
        zl, zh = bounds[z]
        zl[idx] = np.maximum(zl[idx], root.block(lo.reshape(1, -1), i)[0].double().numpy())
        zh[idx] = np.minimum(zh[idx], root.block(hi.reshape(1, -1), i)[0].double().numpy())
    box = Box(*bounds[gm.input_name])
    out = check_term(graph_problem(gm, bounds), box, Halfspaces(C, b), backend,
                     time_limit=max(0.1, time_limit), may_be_empty=True)
    if out.status is Status.VERIFIED:
        return True, None
    return False, out.candidate if out.status is Status.FALSIFIED else None
