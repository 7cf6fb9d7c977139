"""Mixed-integer encoding of a graph (:class:`~verinet.bounds.graph.GraphModel`), node by
node, with big-M constants from the graph engine's sound bounds.

Every input-dependent node gets one column per unit (or reuses its input's columns):

* affine nodes (Gemm, Conv, pooling averages, channel affine, Add/Sub of two tensors,
  Concat, ...): ``z - sum_i J_i x_i = offset``, where ``J_i`` is the node's linear map on
  input ``i`` read off as a **sparse** matrix by applying the rule's own ``lin`` to chunks
  of basis vectors (a convolution's rows hold only its kernel's entries, each the rule's
  float64 coefficient; no dense matrix is formed beyond one chunk of ``CHUNK_VALUES``).
  Pure data movement (Reshape, Flatten, Transpose) reuses the input's columns, permuted;
* ReLU: the MIPVerify encoding of :mod:`verinet.milp.encode` (stable units need no
  binary); LeakyReLU(a): ``a z + (1 - a) relu(z)``; Clip(lo, hi):
  ``lo + relu(z - lo) - relu(z - hi)``: exact for every slope and end;
* MaxPool: per window, the elements whose upper bound reaches the largest lower bound
  take one binary each: ``y >= x_i``, ``y <= x_i + (U - l_i)(1 - d_i)``, ``sum d_i = 1``
  (``U`` the largest upper bound); a window with one such element is that element.

The encoding is exact (its integer-feasible set projects onto the graph of the network
over the box) when the bounds are sound, and its LP relaxation is the triangle relaxation.
Sigmoid and Tanh have no exact mixed-integer form: :func:`milp_lacking` names such nodes
and :class:`GraphEncoder` refuses them.  Column ``ZERO`` stands for the constant 0 (an
inactive ReLU unit).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch

from verinet.bounds.graph import GraphModel, GraphOptions, build_state
from verinet.bounds.graph.activations import ClipRule, LeakyReluRule, ReluRule
from verinet.bounds.graph.maxpool import MaxPoolRule
from verinet.bounds.graph.propagate import GraphState
from verinet.milp.backend import MilpBackend
from verinet.milp.encode import ZERO, add_relu
from verinet.types import Box, InputError, UnsupportedModelError

#: Largest number of values one basis chunk of a linear node may produce.
CHUNK_VALUES = 1 << 22

NodeBounds = dict[str, tuple[np.ndarray, np.ndarray]]

_EXACT = (ReluRule, LeakyReluRule, ClipRule, MaxPoolRule)


def milp_lacking(gm: GraphModel) -> list[tuple[str, str, str]]:
    """(op, node, reason) of every node the MILP encoding cannot express exactly."""
    out = []
    for n in gm.nonlinear():
        if not isinstance(gm.rules[n], _EXACT):
            op = type(gm.network.node(n).op).__name__
            out.append((op, n, "not piecewise linear: no exact MILP encoding"))
    return out


def check_graph(gm: GraphModel) -> None:
    """Raise ``UnsupportedModelError`` listing every node the MILP cannot encode."""
    gm.check()
    bad = milp_lacking(gm)
    if bad:
        raise UnsupportedModelError(bad, "MILP encoding")


def graph_node_bounds(gm: GraphModel, box: Box, options: GraphOptions | None = None,
                      stop: Callable[[], bool] | None = None) -> NodeBounds:
    """Sound flat bounds (float64) of every node over ``box`` (CROWN intermediate bounds;
    ``options.tighten`` adds alpha-CROWN steps, ``stop()`` ends them early)."""
    lo = torch.tensor(box.lower, dtype=torch.float64).reshape(1, -1)
    hi = torch.tensor(box.upper, dtype=torch.float64).reshape(1, -1)
    return state_bounds(build_state(gm, lo, hi, options or GraphOptions(), stop=stop))


def state_bounds(st: GraphState, i: int = 0) -> NodeBounds:
    """Box ``i`` of a graph state as flat float64 bounds of every node (copies)."""
    return {n: (st.lo[n][i].reshape(-1).to(torch.float64).numpy().copy(),
                st.hi[n][i].reshape(-1).to(torch.float64).numpy().copy())
            for n in st.gm.order}


def n_binaries(gm: GraphModel, bounds: NodeBounds) -> int:
    """The binaries :class:`GraphEncoder` would add under ``bounds``: one per unstable
    ReLU-like unit, per crossed Clip end, per candidate of a MaxPool window with more than
    one."""
    total = 0
    for n in gm.nonlinear():
        rule = gm.rules[n]
        lo, hi = bounds[gm.inputs[n][0]]
        if isinstance(rule, MaxPoolRule):
            keep = _pool_candidates(rule, gm.shape[gm.inputs[n][0]], lo, hi)[3]
            count = keep.sum(axis=1)
            total += int(count[count > 1].sum())
        elif isinstance(rule, ClipRule):
            if rule.lo_c is not None and rule.hi_c is not None and rule.lo_c > rule.hi_c:
                continue  # constant
            for end in (rule.lo_c, rule.hi_c):
                if end is not None:
                    total += int(((lo < end) & (hi > end)).sum())
        elif not (isinstance(rule, LeakyReluRule) and rule.alpha == 1.0):  # 1: identity
            total += int(((lo < 0) & (hi > 0)).sum())
    return total


@dataclass(frozen=True)
class GraphEncoding:
    """Columns of the encoded graph: ``cols[name]`` per node (``ZERO``: constant 0)."""

    x: np.ndarray
    outputs: np.ndarray
    cols: dict[str, np.ndarray]
    n_binaries: int


@dataclass
class GraphEncoder:
    """Adds the graph's nodes to ``backend`` one at a time (:meth:`add`), so a caller can
    tighten a node's bounds on the model built so far before the next node uses them."""

    backend: MilpBackend
    gm: GraphModel
    box: Box
    bounds: NodeBounds
    cols: dict[str, np.ndarray] = field(default_factory=dict)
    n_binaries: int = 0
    _zero: int = -1

    def __post_init__(self) -> None:
        check_graph(self.gm)
        gm = self.gm
        if self.box.dim != gm.size(gm.input_name):
            raise InputError(f"box has {self.box.dim} inputs, the model expects "
                             f"{gm.size(gm.input_name)}")
        for n in gm.order:
            lo, hi = self.bounds[n]
            if lo.shape != (gm.size(n),) or hi.shape != lo.shape:
                raise InputError(f"bounds of node '{n}' have shape {lo.shape}, the node has "
                                 f"{gm.size(n)} units")
            if np.isnan(lo).any() or np.isnan(hi).any():
                raise InputError(f"bounds of node '{n}' contain NaN")
        self.rules = gm.rules_on(torch.float64, "cpu")
        self.cols[gm.input_name] = self.backend.add_vars(self.box.lower, self.box.upper)

    # ------------------------------------------------------------------ driving
    def add(self, name: str) -> np.ndarray:
        rule = self.rules[name]
        if getattr(rule, "linear", False):
            c = self._affine(name)
        elif isinstance(rule, MaxPoolRule):
            c = self._maxpool(name, rule)
        else:
            c = self._elementwise(name, rule)
        self.cols[name] = c
        return c

    def encode(self) -> GraphEncoding:
        for n in self.gm.order[1:]:
            if n not in self.cols:
                self.add(n)
        return self.encoding()

    def encoding(self) -> GraphEncoding:
        gm = self.gm
        out = self._materialise(self.cols[gm.output_name])
        return GraphEncoding(self.cols[gm.input_name], out, dict(self.cols), self.n_binaries)

    # ------------------------------------------------------------------ helpers
    def _vars(self, lo: np.ndarray, hi: np.ndarray, integer: bool = False) -> np.ndarray:
        return np.asarray(self.backend.add_vars(lo, hi, integer=integer), dtype=np.int64)

    def _zero_col(self) -> int:
        if self._zero < 0:
            self._zero = int(self._vars(np.zeros(1), np.zeros(1))[0])
        return self._zero

    def _materialise(self, cols: np.ndarray) -> np.ndarray:
        """``cols`` with ``ZERO`` replaced by a column fixed at 0."""
        if (cols == ZERO).any():
            cols = np.where(cols == ZERO, self._zero_col(), cols)
        return cols

    def _rows(self, rows: list[np.ndarray], cols: list[np.ndarray], vals: list[np.ndarray],
              m: int, lower: np.ndarray, upper: np.ndarray) -> None:
        r, c, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
        keep = c != ZERO
        coeffs = sp.csr_matrix((v[keep], (r[keep], c[keep])), shape=(m, self.backend.num_vars))
        self.backend.add_rows(coeffs, lower, upper)

    def _define(self, name: str, terms: list[tuple[np.ndarray, np.ndarray]],
                const: np.ndarray) -> np.ndarray:
        """New columns ``y = sum coef * cols + const`` bounded by the node's bounds."""
        lo, hi = self.bounds[name]
        y = self._vars(lo, hi)
        m = y.size
        r = np.arange(m)
        rows, cols, vals = [r], [y], [np.ones(m)]
        for coef, c in terms:
            rows.append(r)
            cols.append(c)
            vals.append(-np.broadcast_to(coef, (m,)).astype(np.float64))
        self._rows(rows, cols, vals, m, const, const)
        return y

    # ------------------------------------------------------------------ affine
    def _affine(self, name: str) -> np.ndarray:
        gm, rule = self.gm, self.rules[name]
        ins = [i for i in gm.inputs[name] if i in gm.shape]
        offset = getattr(rule, "offset", None)
        if getattr(rule, "exact", False) and len(ins) == 1 and offset is None:
            src = ins[0]
            idx = torch.arange(gm.size(src), dtype=torch.float64).reshape((1,) + gm.shape[src])
            perm = rule.lin([idx]).reshape(-1).numpy().astype(np.int64)  # type: ignore[attr-defined]
            return self.cols[src][perm]
        lo, hi = self.bounds[name]
        m = lo.size
        z = self._vars(lo, hi)
        rows, cols, vals = [np.arange(m)], [z], [np.ones(m)]
        for k, src in enumerate(ins):
            J: sp.coo_matrix = gm.cached(("milp_rows", name, k),  # type: ignore[assignment]
                                         lambda k=k: self._jacobian(rule, ins, k, m))
            rows.append(J.row)
            cols.append(self.cols[src][J.col])
            vals.append(-J.data)
        b = np.zeros(m)
        if offset is not None:
            b = np.broadcast_to(offset.numpy(), (1,) + gm.shape[name]).reshape(-1).astype(
                np.float64)
        self._rows(rows, cols, vals, m, b, b)
        return z

    def _jacobian(self, rule: object, ins: list[str], k: int, m: int) -> sp.coo_matrix:
        """The sparse (m, n_k) matrix of ``rule``'s linear map on its ``k``-th input (the
        map applied to chunks of basis vectors; kept on the model by the caller, so every
        encoding of the same model reuses it)."""
        gm = self.gm
        n = gm.size(ins[k])
        zeros = [torch.zeros((1,) + gm.shape[s], dtype=torch.float64) for s in ins]
        step = max(1, CHUNK_VALUES // max(m, n))
        rs, cs, vs = [], [], []
        start = 0
        while start < n:
            stop = min(n, start + step)
            c = stop - start
            basis = torch.zeros((c, n), dtype=torch.float64)
            basis[torch.arange(c), torch.arange(start, stop)] = 1.0
            xs = list(zeros)
            xs[k] = basis.reshape((c,) + gm.shape[ins[k]])
            y = rule.lin(xs).reshape(c, m).numpy()  # type: ignore[attr-defined]
            j, i = np.nonzero(y)
            rs.append(i)
            cs.append(j + start)
            vs.append(y[j, i])
            start = stop
        return sp.coo_matrix((np.concatenate(vs), (np.concatenate(rs), np.concatenate(cs))),
                             shape=(m, n))

    # ------------------------------------------------------------------ nonlinear
    def _relu(self, z: np.ndarray, lo: np.ndarray, hi: np.ndarray,
              shift: float = 0.0) -> np.ndarray:
        """Columns of ``relu(z - shift)`` for ``lo <= z <= hi`` (``z`` materialised)."""
        a, d = add_relu(self.backend, z, lo, hi, shift)
        self.n_binaries += int((d != ZERO).sum())
        return a

    def _elementwise(self, name: str, rule: object) -> np.ndarray:
        zname = self.gm.inputs[name][0]
        z = self._materialise(self.cols[zname])
        lo, hi = self.bounds[zname]
        m = z.size
        if isinstance(rule, ReluRule):
            return self._relu(z, lo, hi)
        if isinstance(rule, LeakyReluRule):
            a = float(rule.alpha)
            if a == 0.0:
                return self._relu(z, lo, hi)
            if a == 1.0:
                return z
            p = self._relu(z, lo, hi)
            return self._define(name, [(np.full(m, a), z), (np.full(m, 1.0 - a), p)],
                                np.zeros(m))
        assert isinstance(rule, ClipRule)
        lo_c, hi_c = rule.lo_c, rule.hi_c
        if lo_c is not None and hi_c is not None and lo_c > hi_c:
            return self._define(name, [], np.full(m, float(hi_c)))
        if lo_c is None and hi_c is None:
            return z
        terms: list[tuple[np.ndarray, np.ndarray]] = []
        const = np.zeros(m)
        if lo_c is not None:
            terms.append((np.ones(m), self._relu(z, lo, hi, float(lo_c))))
            const += float(lo_c)
        else:
            terms.append((np.ones(m), z))
        if hi_c is not None:
            terms.append((-np.ones(m), self._relu(z, lo, hi, float(hi_c))))
        return self._define(name, terms, const)

    def _maxpool(self, name: str, rule: MaxPoolRule) -> np.ndarray:
        gm = self.gm
        src = gm.inputs[name][0]
        x = self._materialise(self.cols[src])
        lo, hi = self.bounds[src]
        safe, l_i, u_i, keep = _pool_candidates(rule, gm.shape[src], lo, hi)
        L = l_i.max(axis=1, keepdims=True)
        count = keep.sum(axis=1)
        out = np.full(safe.shape[0], ZERO, dtype=np.int64)
        one = np.flatnonzero(count == 1)
        out[one] = x[safe[one, keep[one].argmax(axis=1)]]
        many = np.flatnonzero(count > 1)
        if not many.size:
            return out
        y_lo, y_hi = self.bounds[name]
        U = np.where(keep, u_i, -np.inf).max(axis=1)
        y = self._vars(np.maximum(y_lo[many], L[many, 0]), np.minimum(y_hi[many], U[many]))
        out[many] = y
        o, j = np.nonzero(keep[many])  # o: position in ``many``
        q = o.size
        d = self._vars(np.zeros(q), np.ones(q), integer=True)
        self.n_binaries += q
        xi = x[safe[many[o], j]]
        big = U[many[o]] - l_i[many[o], j]
        r = np.arange(q)
        g = many.size
        # y - x_i >= 0 ; y - x_i + M d_i <= M ; sum_i d_i = 1
        self._rows([r, r, q + r, q + r, q + r, 2 * q + o],
                   [y[o], xi, y[o], xi, d, d],
                   [np.ones(q), -np.ones(q), np.ones(q), -np.ones(q), big, np.ones(q)],
                   2 * q + g, np.concatenate([np.zeros(q), np.full(q, -np.inf), np.ones(g)]),
                   np.concatenate([np.full(q, np.inf), big, np.ones(g)]))
        return out


def _pool_candidates(rule: MaxPoolRule, shape: tuple[int, ...], lo: np.ndarray,
                     hi: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per output unit (rows) and window position: the input index (0 on padding), the
    input's bounds (``-inf`` on padding) and whether it can be the maximum (its upper
    bound reaches the window's largest lower bound)."""
    n = lo.size
    idx = torch.arange(1, n + 1, dtype=torch.float64).reshape((1,) + shape)
    win = rule.window.unfold(idx, 0.0)[0]  # (C, kk, Ho, Wo), 0 on padding
    C, kk = win.shape[:2]
    win = win.reshape(C, kk, -1).permute(0, 2, 1).reshape(-1, kk).numpy().astype(
        np.int64) - 1  # (n_out, kk), -1 on padding
    valid = win >= 0
    safe = np.where(valid, win, 0)
    l_i = np.where(valid, lo[safe], -np.inf)
    u_i = np.where(valid, hi[safe], -np.inf)
    keep = valid & (u_i >= l_i.max(axis=1, keepdims=True))
    return safe, l_i, u_i, keep
