"""Brute-force exact oracle for tiny ReLU graphs (test helper, not part of verinet).

For a fixed activation pattern every ReLU is a fixed 0/1 mask, so the network is affine;
the rewrite replaces each ReLU by a multiplication with its mask (a Const), and torch's
autograd reads off the affine maps of the output and of every pre-activation (independent
of the bound engine).  One LP per pattern (``scipy.optimize.linprog``) gives the minimum
of the largest term-row violation over the pattern's region; the minimum over all
patterns is exact.  Only for graphs with at most ``MAX_UNITS`` ReLU units.
"""

from __future__ import annotations

import itertools
from math import prod

import numpy as np
import torch
from scipy.optimize import linprog

from verinet.ir import ops as O
from verinet.ir.graph import Network, Node
from verinet.ir.torch import TorchNetwork
from verinet.types import Box

MAX_UNITS = 10


def _masked(net: Network, masks: dict[str, np.ndarray]) -> Network:
    nodes = []
    for n in net.nodes:
        if isinstance(n.op, O.Relu):
            c = Node(f"{n.name}__mask", O.Const(masks[n.name].reshape(n.shape)), (), n.shape)
            nodes += [c, Node(n.name, O.Binary("mul"), (n.inputs[0], c.name), n.shape)]
        else:
            nodes.append(n)
    return Network(net.input_name, net.input_shape, tuple(nodes), net.output_name, net.name)


def _affine(mod: TorchNetwork, net: Network, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``J``, ``c`` with ``node(x) = J x + c`` (flat)."""
    n = net.n_inputs
    x = torch.zeros((n + 1, n), dtype=torch.float64)
    x[1:] = torch.eye(n, dtype=torch.float64)
    with torch.no_grad():
        y = mod.run({net.input_name: x.reshape((n + 1,) + net.input_shape[1:])}, [name])[name]
    y = y.reshape(n + 1, -1).numpy()
    return (y[1:] - y[0]).T, y[0]


def min_violation(net: Network, box: Box, A: np.ndarray, b: np.ndarray) -> tuple[float,
                                                                              np.ndarray]:
    """``min_{x in box} max_r (A_r f(x) - b_r)`` and a minimiser."""
    relus = [n for n in net.nodes if isinstance(n.op, O.Relu)]
    sizes = [prod(n.shape[1:]) for n in relus]
    if sum(sizes) > MAX_UNITS:
        raise ValueError(f"oracle limited to {MAX_UNITS} ReLU units")
    best, arg = np.inf, box.center
    d = box.dim
    for bits in itertools.product([0.0, 1.0], repeat=sum(sizes)):
        masks, k = {}, 0
        for n, s in zip(relus, sizes, strict=True):
            masks[n.name] = np.array(bits[k: k + s])
            k += s
        m = _masked(net, masks)
        mod = TorchNetwork(m)
        G, h = [], []
        for n in relus:
            J, c = _affine(mod, m, n.inputs[0])
            sign = np.where(masks[n.name] > 0, -1.0, 1.0)  # active: z >= 0
            G.append(sign[:, None] * J)
            h.append(-sign * c)
        F, g = _affine(mod, m, net.output_name)
        # pattern rows on x (tau free), then A_r (F x + g) - b_r <= tau
        Gm = np.vstack([np.hstack([gg, np.zeros((len(gg), 1))]) for gg in G]
                       + [np.hstack([A @ F, -np.ones((len(A), 1))])])
        hm = np.concatenate(h + [b - A @ g])
        cost = np.zeros(d + 1)
        cost[-1] = 1.0
        bounds = list(zip(box.lower, box.upper, strict=True)) + [(None, None)]
        res = linprog(cost, A_ub=Gm, b_ub=hm, bounds=bounds, method="highs")
        if res.status == 0 and res.fun < best:
            best, arg = float(res.fun), np.asarray(res.x[:d])
    return best, arg
