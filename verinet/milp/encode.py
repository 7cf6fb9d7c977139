"""Mixed-integer encoding of ReLU chains (Tjeng, Xiao & Tedrake 2019, "MIPVerify").

Variables: inputs ``x`` (bounded by the box), one pre-activation ``z`` per unit of every
affine layer (bounded by the given :class:`LayerBounds`), and post-activations ``a``.
For a ReLU with pre-activation bounds ``[l, u]``:

* ``l >= 0``: ``a`` is ``z`` itself (no new variable);
* ``u <= 0``: ``a = 0`` (the unit is dropped from the next layer);
* ``l < 0 < u``: ``a in [0, u]`` and a binary ``d`` with
  ``a >= z``, ``a <= u d``, ``a <= z - l (1 - d)``.

The big-M constants are the given bounds, so the encoding is exact (its integer-feasible
set projects onto the graph of the network over the box) as long as those bounds are
sound; its LP relaxation is the "triangle" relaxation.  Only ReLU chains are supported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from verinet.bounds.interval import LayerBounds
from verinet.ir.chain import Affine, Chain
from verinet.milp.backend import MilpBackend
from verinet.types import Box, InputError, UnsupportedModelError

ZERO = -1  # index used for a post-activation that is the constant 0


@dataclass(frozen=True)
class Encoding:
    """Column indices of the encoded chain.

    ``z[k]``: pre-activations of affine layer ``k`` (``z[-1]`` are the outputs);
    ``a[k]``: post-activations of activation ``k`` (``ZERO`` = constant 0, may alias z);
    ``d[k]``: binaries of activation ``k`` (``ZERO`` where the unit is stable).
    """

    x: np.ndarray
    z: tuple[np.ndarray, ...]
    a: tuple[np.ndarray, ...]
    d: tuple[np.ndarray, ...]

    @property
    def outputs(self) -> np.ndarray:
        return self.z[-1]

    @property
    def n_binaries(self) -> int:
        return int(sum((d >= 0).sum() for d in self.d))


def check_relu_chain(chain: Chain) -> None:
    """Raise ``UnsupportedModelError`` unless every activation is a ReLU."""
    bad = [(act.kind, f"activation {i}", "MILP encoding supports ReLU only")
           for i, act in enumerate(chain.activations) if act.kind != "relu"]
    if bad:
        raise UnsupportedModelError(bad, "MILP encoding")


def check_bounds(chain: Chain, bounds: LayerBounds) -> None:
    """Shapes must match the chain's affine layers."""
    sizes = [layer.n_out for layer in chain.affines]
    got = [v.size for v in bounds.lower]
    if got != sizes:
        raise InputError(f"layer bounds have sizes {got}, chain needs {sizes}")
    if any(np.isnan(v).any() for v in bounds.lower + bounds.upper):
        raise InputError("layer bounds contain NaN")


def add_input(backend: MilpBackend, box: Box) -> np.ndarray:
    """Input variables bounded by ``box``."""
    return backend.add_vars(box.lower, box.upper)


def add_affine(
    backend: MilpBackend, layer: Affine, inputs: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> np.ndarray:
    """Variables ``z = W @ a + b`` with bounds ``[lo, hi]``; ``inputs`` may hold ``ZERO``."""
    z = backend.add_vars(lo, hi)
    live = np.flatnonzero(inputs != ZERO)
    W = sp.coo_matrix(layer.weight[:, live])
    m, n = layer.n_out, backend.num_vars
    rows = np.concatenate([np.arange(m), W.row])
    cols = np.concatenate([z, inputs[live][W.col]])
    vals = np.concatenate([np.ones(m), -W.data])
    coeffs = sp.csr_matrix((vals, (rows, cols)), shape=(m, n))
    backend.add_rows(coeffs, layer.bias, layer.bias)  # z - W a = b
    return z


def add_relu(
    backend: MilpBackend, z: np.ndarray, lo: np.ndarray, hi: np.ndarray,
    shift: np.ndarray | float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Post-activation and binary indices for ``a = relu(z - shift)`` with
    ``lo <= z <= hi`` (``z`` real columns)."""
    c = np.broadcast_to(np.asarray(shift, dtype=np.float64), z.shape)
    lw, up = lo - c, hi - c
    a = np.full(z.size, ZERO, dtype=np.int64)
    d = np.full(z.size, ZERO, dtype=np.int64)
    active = lw >= 0
    plain = active & (c == 0)
    a[plain] = z[plain]
    moved = np.flatnonzero(active & (c != 0))
    if moved.size:  # a = z - c
        av = backend.add_vars(lw[moved], up[moved])
        q = moved.size
        coeffs = sp.csr_matrix((np.concatenate([np.ones(q), -np.ones(q)]),
                                (np.concatenate([np.arange(q)] * 2),
                                 np.concatenate([av, z[moved]]))), shape=(q, backend.num_vars))
        backend.add_rows(coeffs, -c[moved], -c[moved])
        a[moved] = av
    unstable = np.flatnonzero((lw < 0) & (up > 0))
    if unstable.size == 0:
        return a, d
    lw, up, cu = lw[unstable], up[unstable], c[unstable]
    if not (np.isfinite(lw).all() and np.isfinite(up).all()):
        raise InputError("MILP encoding needs finite bounds on every unstable ReLU input")
    av = backend.add_vars(np.zeros(unstable.size), up)
    dv = backend.add_vars(np.zeros(unstable.size), np.ones(unstable.size), integer=True)
    a[unstable], d[unstable] = av, dv
    zu = z[unstable]
    q = unstable.size
    r = np.arange(q)
    n = backend.num_vars
    # a - z >= -c ; a - u d <= 0 ; a - z - l d <= -l - c
    rows = np.concatenate([r, r, q + r, q + r, 2 * q + r, 2 * q + r, 2 * q + r])
    cols = np.concatenate([av, zu, av, dv, av, zu, dv])
    vals = np.concatenate([np.ones(q), -np.ones(q), np.ones(q), -up, np.ones(q), -np.ones(q),
                           -lw])
    coeffs = sp.csr_matrix((vals, (rows, cols)), shape=(3 * q, n))
    lower = np.concatenate([-cu, np.full(2 * q, -np.inf)])
    upper = np.concatenate([np.full(q, np.inf), np.zeros(q), -lw - cu])
    backend.add_rows(coeffs, lower, upper)
    return a, d


def encode_chain(
    backend: MilpBackend, chain: Chain, box: Box, bounds: LayerBounds
) -> Encoding:
    """Encode ``chain`` over ``box`` into ``backend`` with big-M from ``bounds``
    (which must be sound for ``box``; pass the tightest available)."""
    check_relu_chain(chain)
    check_bounds(chain, bounds)
    if box.dim != chain.n_inputs:
        raise InputError(f"box has {box.dim} inputs, chain expects {chain.n_inputs}")
    x = add_input(backend, box)
    h = x
    zs, as_, ds = [], [], []
    affines = chain.affines
    for k, layer in enumerate(affines):
        z = add_affine(backend, layer, h, bounds.lower[k], bounds.upper[k])
        zs.append(z)
        if k < len(affines) - 1:
            h, d = add_relu(backend, z, bounds.lower[k], bounds.upper[k])
            as_.append(h)
            ds.append(d)
    return Encoding(x, tuple(zs), tuple(as_), tuple(ds))
