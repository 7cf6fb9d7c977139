"""The chain form every verification engine works on.

A :class:`Chain` alternates dense affine layers and elementwise activations::

    Affine, Act, Affine, Act, ..., Affine

on flat float64 vectors.  :func:`to_chain` derives it from any sequential Network: each
maximal affine sub-graph between two activations (Sub/Div normalisation, Flatten,
Reshape, MatMul/Gemm, Conv, folded BN, Transpose, Concat with constants, average
pooling...) is read off exactly by evaluating its linear part on basis vectors; the
piecewise-linear activations LeakyRelu and Clip are rewritten as ReLUs.  The result is
checked against the Network on random points before it is returned.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

import numpy as np
import torch

from verinet.ir import ops as O
from verinet.ir.graph import Network
from verinet.ir.torch import torch_network
from verinet.types import SoundnessError, UnsupportedModelError, frozen_array

ACT_KINDS = ("relu", "sigmoid", "tanh")


@dataclass(frozen=True)
class Affine:
    """``y = weight @ x + bias``; ``weight`` has shape (out, in)."""

    weight: np.ndarray
    bias: np.ndarray

    def __post_init__(self) -> None:
        w = frozen_array(self.weight)
        b = frozen_array(self.bias).reshape(-1)
        if w.ndim != 2 or w.shape[0] != b.size:
            raise ValueError(f"affine layer: weight {w.shape}, bias {b.shape}")
        object.__setattr__(self, "weight", w)
        object.__setattr__(self, "bias", b)

    @property
    def n_in(self) -> int:
        return int(self.weight.shape[1])

    @property
    def n_out(self) -> int:
        return int(self.weight.shape[0])


@dataclass(frozen=True)
class Activation:
    """Elementwise activation of ``kind`` in ``ACT_KINDS`` over ``size`` units."""

    kind: str
    size: int

    def __post_init__(self) -> None:
        if self.kind not in ACT_KINDS:
            raise ValueError(f"unknown activation kind {self.kind}")

    def apply(self, z: np.ndarray) -> np.ndarray:
        if self.kind == "relu":
            return np.maximum(z, 0.0)
        if self.kind == "sigmoid":
            return 1.0 / (1.0 + np.exp(-z))
        return np.tanh(z)


@dataclass(frozen=True)
class Chain:
    """``Affine (Activation Affine)*`` on flat float64 vectors."""

    layers: tuple[Affine | Activation, ...]

    def __post_init__(self) -> None:
        layers = tuple(self.layers)
        object.__setattr__(self, "layers", layers)
        if not layers or len(layers) % 2 == 0:
            raise ValueError("a chain alternates Affine and Activation, starting and ending Affine")
        for i, layer in enumerate(layers):
            want = Affine if i % 2 == 0 else Activation
            if not isinstance(layer, want):
                raise ValueError(f"layer {i} must be {want.__name__}")
        for i in range(1, len(layers), 2):
            prev, act, nxt = layers[i - 1], layers[i], layers[i + 1]
            assert isinstance(prev, Affine) and isinstance(act, Activation)
            assert isinstance(nxt, Affine)
            if not prev.n_out == act.size == nxt.n_in:
                raise ValueError(f"layer sizes do not match around activation {i}")

    @property
    def affines(self) -> tuple[Affine, ...]:
        return tuple(layer for layer in self.layers if isinstance(layer, Affine))

    @property
    def activations(self) -> tuple[Activation, ...]:
        return tuple(layer for layer in self.layers if isinstance(layer, Activation))

    @property
    def n_inputs(self) -> int:
        return self.affines[0].n_in

    @property
    def n_outputs(self) -> int:
        return self.affines[-1].n_out

    @property
    def is_relu(self) -> bool:
        return all(a.kind == "relu" for a in self.activations)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Outputs for flat inputs ``(B, n)`` or ``(n,)``."""
        return self.pre_activations(x)[-1]

    def pre_activations(self, x: np.ndarray) -> list[np.ndarray]:
        """Outputs of every affine layer (the last one is the network output)."""
        h = np.asarray(x, dtype=np.float64)
        out = []
        for layer in self.layers:
            if isinstance(layer, Affine):
                h = h @ layer.weight.T + layer.bias
                out.append(h)
            else:
                h = layer.apply(h)
        return out

    def with_output_map(self, A: np.ndarray, b: np.ndarray | None = None) -> Chain:
        """The chain ``x -> A @ f(x) + b`` (e.g. a property's halfspace rows)."""
        last = self.affines[-1]
        A = np.asarray(A, dtype=np.float64)
        off = np.zeros(A.shape[0]) if b is None else np.asarray(b, dtype=np.float64)
        new = Affine(A @ last.weight, A @ last.bias + off)
        return Chain(self.layers[:-1] + (new,))


# ----------------------------------------------------------------------------- extraction

_BASIS_CHUNK = 2048


def to_chain(net: Network, check_points: int = 8, seed: int = 0) -> Chain:
    """Derive the chain form of ``net`` or raise ``UnsupportedModelError`` listing why."""
    cuts, acts = _cut_points(net)
    mod = torch_network(net, torch.float64)
    layers: list[Affine | Activation] = []
    post = np.eye(net.n_inputs)  # maps the previous cut's flat value to the chain state
    post_off = np.zeros(net.n_inputs)
    for src, act in zip(cuts, acts + [None], strict=True):
        target = act.inputs[0] if act is not None else net.output_name
        W, b = _segment(net, mod, src, target)
        W, b = W @ post, b + W @ post_off
        if act is None:
            layers.append(Affine(W, b))
            break
        pre, kind, post, post_off = _compile_activation(act.op, W, b)
        if kind is None:  # identity activation: fold into the next segment
            continue
        layers.append(pre)
        layers.append(Activation(kind, pre.n_out))
    chain = Chain(tuple(layers))
    _check_equal(net, chain, check_points, seed)
    return chain


def _cut_points(net: Network) -> tuple[list[str], list[O.Op | object]]:
    """Activation nodes in order; raise if the graph is not a chain of affine segments."""
    needed = net.ancestors(net.output_name)
    src: dict[str, frozenset[str]] = {net.input_name: frozenset([net.input_name])}
    problems: list[tuple[str, str, str]] = []
    acts = []
    for node in net.nodes:
        if node.name not in needed:
            continue
        dyn_inputs = [i for i in node.inputs if i in src]
        if not dyn_inputs:
            continue  # constant sub-graph
        op = node.op
        if isinstance(op, O.ACTIVATIONS):
            if isinstance(op, (O.MaxPool, O.Softmax)):
                problems.append((type(op).__name__, node.name, "not piecewise-affine in ReLUs"))
            acts.append(node)
            src[node.name] = frozenset([node.name])
            continue
        if isinstance(op, O.Binary) and op.kind in ("mul", "div"):
            if len(dyn_inputs) > 1 or (op.kind == "div" and node.inputs[1] in src):
                problems.append(("Binary", node.name, f"{op.kind} of input-dependent tensors"))
        src[node.name] = frozenset().union(*(src[i] for i in dyn_inputs))
    if net.output_name not in src:
        problems.append(("Network", net.output_name, "output does not depend on the input"))
    prev = net.input_name
    for a in acts:
        s = src[a.inputs[0]]
        if s != {prev}:
            problems.append((type(a.op).__name__, a.name, "non-sequential graph (skip connection)"))
        prev = a.name
    if net.output_name in src and src[net.output_name] != {prev}:
        problems.append(("Network", net.output_name, "non-sequential graph (skip connection)"))
    if problems:
        raise UnsupportedModelError(problems, "chain form for verification")
    cuts = [net.input_name] + [a.name for a in acts]
    return cuts, acts


def _shape_of(net: Network, name: str) -> tuple[int, ...]:
    return net.input_shape if name == net.input_name else net.node(name).shape


def _segment(net: Network, mod: object, src: str, target: str) -> tuple[np.ndarray, np.ndarray]:
    """Exact (W, b) of the affine map from tensor ``src`` to tensor ``target``."""
    shape = _shape_of(net, src)
    n = prod(shape[1:])
    run = mod.run  # type: ignore[attr-defined]
    with torch.no_grad():
        zero = torch.zeros(shape, dtype=torch.float64)
        b = run({src: zero}, [target])[target].reshape(-1).numpy().copy()
        cols = []
        for lo in range(0, n, _BASIS_CHUNK):
            k = min(_BASIS_CHUNK, n - lo)
            basis = torch.zeros((k, n), dtype=torch.float64)
            basis[torch.arange(k), torch.arange(lo, lo + k)] = 1.0
            out = run({src: basis.reshape((k,) + shape[1:])}, [target], homogeneous=True)[target]
            cols.append(out.reshape(k, -1).numpy().T.copy())
    W = np.concatenate(cols, axis=1)
    return W, b


def _compile_activation(
    op: O.Op, W: np.ndarray, b: np.ndarray
) -> tuple[Affine, str | None, np.ndarray, np.ndarray]:
    """Return (pre-affine, kind, post-matrix, post-offset) so that
    ``act(W x + b) == post @ kind(pre(x)) + post_off``."""
    m = W.shape[0]
    eye = np.eye(m)
    zero = np.zeros(m)
    if isinstance(op, O.Relu):
        return Affine(W, b), "relu", eye, zero
    if isinstance(op, (O.Sigmoid, O.Tanh)):
        return Affine(W, b), "sigmoid" if isinstance(op, O.Sigmoid) else "tanh", eye, zero
    if isinstance(op, O.LeakyRelu):  # relu(z) - alpha * relu(-z)
        pre = Affine(np.vstack([W, -W]), np.concatenate([b, -b]))
        return pre, "relu", np.hstack([eye, -op.alpha * eye]), zero
    if isinstance(op, O.Clip):
        lo, hi = op.lo, op.hi
        if lo is not None and hi is not None and lo > hi:  # ONNX: the output is hi everywhere
            return Affine(W, b), None, np.zeros((m, W.shape[1])), np.full(m, hi)
        if lo is not None and hi is not None:  # lo + relu(z - lo) - relu(z - hi)
            pre = Affine(np.vstack([W, W]), np.concatenate([b - lo, b - hi]))
            return pre, "relu", np.hstack([eye, -eye]), np.full(m, lo)
        if lo is not None:  # lo + relu(z - lo)
            return Affine(W, b - lo), "relu", eye, np.full(m, lo)
        if hi is not None:  # hi - relu(hi - z)
            return Affine(-W, hi - b), "relu", -eye, np.full(m, hi)
        return Affine(W, b), None, W, b  # unbounded clip is the identity
    raise UnsupportedModelError([(type(op).__name__, "?", "no chain rewrite")])


def _check_equal(net: Network, chain: Chain, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=(n, net.n_inputs))
    y_net = net.evaluate(x)
    y_chain = chain.forward(x)
    err = float(np.max(np.abs(y_net - y_chain))) if y_net.size else 0.0
    scale = 1.0 + float(np.max(np.abs(y_net))) if y_net.size else 1.0
    if err > 1e-8 * scale:
        raise SoundnessError(f"chain form differs from the network by {err:.3g}")
