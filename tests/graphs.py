"""Random small graphs for the graph-engine tests: CNNs with random convolution geometry,
pooling, residual ``Add``, ``Concat``, folded batch norm and every activation.

:func:`random_graph` builds an IR :class:`~verinet.ir.graph.Network` from a seed and a
feature set; the Network constructor dry-runs every node on the torch kernels, so the
shapes computed here are checked against the evaluator.
"""

from __future__ import annotations

from math import prod

import numpy as np

from verinet.ir import ops as O
from verinet.ir.graph import Network, Node

ACTS = ("relu", "leaky", "sigmoid", "tanh", "clip")


class _Builder:
    def __init__(self, rng: np.random.Generator, shape: tuple[int, ...]) -> None:
        self.rng = rng
        self.nodes: list[Node] = []
        self.shape = {"x": shape}
        self.count = 0

    def add(self, op: O.Op, inputs: tuple[str, ...], shape: tuple[int, ...]) -> str:
        self.count += 1
        name = f"n{self.count}_{type(op).__name__.lower()}"
        self.nodes.append(Node(name, op, inputs, shape))
        self.shape[name] = shape
        return name

    def conv(self, x: str, c_out: int | None = None, same: bool = False) -> str:
        rng = self.rng
        _, c, h, w = self.shape[x]
        groups = int(rng.choice([g for g in (1, 2)
                                 if c % g == 0 and (c_out is None or c_out % g == 0)]))
        if c_out is None:
            c_out = groups * int(rng.integers(1, 3))
        if same:
            k, s, d, pads = 3, 1, 1, (1, 1, 1, 1)
        else:
            k = int(rng.integers(1, 4))
            s = int(rng.integers(1, 3))
            d = int(rng.integers(1, 3)) if k > 1 else 1
            pads = tuple(int(v) for v in rng.integers(0, 2, size=4))
        t, left, b, r = pads
        ho = (h + t + b - d * (k - 1) - 1) // s + 1
        wo = (w + left + r - d * (k - 1) - 1) // s + 1
        if ho < 1 or wo < 1:
            return self.conv(x, c_out, same=True)
        W = rng.normal(0, 1.0 / np.sqrt(c // groups * k * k), size=(c_out, c // groups, k, k))
        bias = rng.normal(0, 0.3, size=c_out)
        return self.add(O.Conv(W, bias, (s, s), pads, (d, d), groups), (x,), (1, c_out, ho, wo))

    def act(self, x: str, kind: str) -> str:
        op: O.Op
        if kind == "relu":
            op = O.Relu()
        elif kind == "leaky":
            op = O.LeakyRelu(float(self.rng.choice([0.0, 0.1, 0.5, 2.0])))
        elif kind == "sigmoid":
            op = O.Sigmoid()
        elif kind == "tanh":
            op = O.Tanh()
        else:
            lo = float(self.rng.uniform(-1.0, 0.0))
            hi = float(self.rng.uniform(0.0, 1.0))
            op = O.Clip(*self.rng.choice([(lo, hi), (lo, None), (None, hi)]))
        return self.add(op, (x,), self.shape[x])

    def pool(self, x: str, kind: str) -> str:
        from verinet.bounds.graph.windows import Window

        rng = self.rng
        _, c, h, w = self.shape[x]
        k = int(rng.integers(1, min(3, h, w) + 1))
        s = int(rng.integers(1, 3))
        pads = tuple(int(v) for v in rng.integers(0, k, size=4)) if k > 1 else (0, 0, 0, 0)
        ceil = bool(rng.integers(0, 2))
        op: O.Op
        if kind == "max":
            d = int(rng.integers(1, 3)) if k > 1 and min(h, w) > 2 * k else 1
            op = O.MaxPool((k, k), (s, s), pads, (d, d), ceil)
        else:
            op = O.AveragePool((k, k), (s, s), pads, bool(rng.integers(0, 2)), ceil)
        ho, wo = Window.of(op, (c, h, w)).out_hw
        if ho < 1 or wo < 1:
            return x
        return self.add(op, (x,), (1, c, ho, wo))

    def bn(self, x: str) -> str:
        c = self.shape[x][1]
        op = O.ChannelAffine(self.rng.uniform(0.5, 1.5, c) * self.rng.choice([-1, 1], c),
                             self.rng.normal(0, 0.3, c))
        return self.add(op, (x,), self.shape[x])

    def const(self, value: np.ndarray) -> str:
        return self.add(O.Const(value), (), value.shape)

    def scale(self, x: str) -> str:
        shp = self.shape[x]
        c = self.const(self.rng.uniform(0.5, 2.0, size=(1, shp[1]) + (1,) * (len(shp) - 2)))
        kind = str(self.rng.choice(["mul", "div", "add", "sub"]))
        first = (c, x) if kind in ("add", "sub", "mul") and self.rng.integers(0, 2) else (x, c)
        return self.add(O.Binary(kind), first, shp)

    def residual(self, x: str, kind: str) -> str:
        c = self.shape[x][1]
        y = self.act(self.conv(x, c_out=c, same=True), kind)
        y = self.conv(y, c_out=c, same=True)
        return self.add(O.Binary(str(self.rng.choice(["add", "sub"]))), (x, y), self.shape[x])

    def concat(self, x: str, kind: str) -> str:
        a = self.act(self.conv(x, same=True), kind)
        b = self.conv(x, same=True)
        ca, cb = self.shape[a][1], self.shape[b][1]
        _, _, h, w = self.shape[a]
        return self.add(O.Concat(1, 2), (a, b), (1, ca + cb, h, w))

    def flatten_dense(self, x: str, kind: str, n_out: int) -> str:
        n = prod(self.shape[x][1:])
        f = self.add(O.Reshape((n,)), (x,), (1, n))
        hidden = int(self.rng.integers(2, 6))
        W1 = self.rng.normal(0, 1.0 / np.sqrt(n), size=(hidden, n))
        h = self.act(self.add(O.Linear(W1, self.rng.normal(0, 0.3, hidden)), (f,), (1, hidden)),
                     kind)
        W2 = self.rng.normal(0, 1.0 / np.sqrt(hidden), size=(n_out, hidden))
        return self.add(O.Linear(W2, self.rng.normal(0, 0.3, n_out)), (h,), (1, n_out))


BLOCKS = ("conv", "act", "maxpool", "avgpool", "bn", "scale", "residual", "concat",
          "transpose")


def random_graph(seed: int, blocks: tuple[str, ...] = BLOCKS, acts: tuple[str, ...] = ACTS,
                 depth: int = 3, n_out: int = 3) -> Network:
    """A random CNN on a (1, C, H, W) input with ``depth`` random blocks drawn from
    ``blocks`` (activations from ``acts``), then flatten, dense, activation, dense."""
    rng = np.random.default_rng(seed)
    c, h, w = int(rng.integers(1, 3)), int(rng.integers(4, 8)), int(rng.integers(4, 8))
    g = _Builder(rng, (1, c, h, w))
    x = "x"
    for _ in range(depth):
        block = str(rng.choice(blocks))
        kind = str(rng.choice(acts))
        if block == "conv":
            x = g.act(g.conv(x), kind)
        elif block == "act":
            x = g.act(x, kind)
        elif block in ("maxpool", "avgpool"):
            x = g.pool(x, block[:3])
        elif block == "bn":
            x = g.bn(x)
        elif block == "scale":
            x = g.scale(x)
        elif block == "residual":
            x = g.residual(x, kind)
        elif block == "concat":
            x = g.concat(x, kind)
        else:  # transpose H and W, then back to NCHW order for later convolutions
            _, cc, hh, ww = g.shape[x]
            x = g.add(O.Transpose((0, 1, 3, 2)), (x,), (1, cc, ww, hh))
    out = g.flatten_dense(x, str(rng.choice(acts)), n_out)
    return Network("x", (1, c, h, w), tuple(g.nodes), out, f"random{seed}")


def sample_box(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray, n: int) -> np.ndarray:
    """``n`` points of the box: uniform ones, and vertices (half of them)."""
    u = rng.uniform(size=(n, lo.size))
    pts = lo + u * (hi - lo)
    corners = rng.integers(0, 2, size=(n // 2, lo.size)).astype(bool)
    pts[: n // 2] = np.where(corners, hi, lo)
    return pts


def boxes_and_rows(net: Network, seed: int, radius: float
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.random.Generator]:
    """Two boxes of ``radius`` around random centres in [-1, 1]^n, two random output rows
    ``C`` (2, m), and the generator that drew them (for sampling the boxes)."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-1, 1, size=(2, net.n_inputs))
    C = rng.normal(size=(2, net.n_outputs))
    return centres - radius, centres + radius, C, rng
