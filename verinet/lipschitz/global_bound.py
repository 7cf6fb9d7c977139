"""An upper bound on a network's global Lipschitz constant, on any graph.

Each node's map from the network input is bounded node by node in topological order, in
one norm ``p`` for every tensor: ``lip(n) <= ||op_n||_p * lip(input)`` for a
single-input node, ``lip(a) + lip(b)`` for a residual sum, and for a concatenation
``max`` (L-inf), the root of the sum of squares (L2) or the sum (L1) of the parts.

Per-op operator norms (``p -> p``), all sound upper bounds:

* affine ops: L-inf and L1 exactly, as the largest row and column sums of ``|L|``, from
  one pass of ``|L|`` and one of ``|L|^T`` on a tensor of ones (no dense matrix);
  L2: the spectral norm of a Linear's weight (SVD), of a convolution through its
  circulant embedding (Sedghi, Gupta, Long, ICLR 2019: the largest singular value over
  the DFT frequencies of the kernel on a grid large enough to hold the zero-padded
  linear convolution; strides and padding only select and embed, so never enlarge the
  norm), and ``sqrt(||L||_1 ||L||_inf)`` for every op (the smaller is kept).  Power
  iteration (``L^T L`` through the rule's own maps) gives each affine node's *estimate*, a
  lower bound of its L2 norm reported next to the bound.
* activations: the largest derivative (ReLU, Clip 1; LeakyReLU ``max(1, a)``; Sigmoid
  1/4; Tanh 1); MaxPool ``1`` in L-inf, ``c`` in L1 and ``sqrt(c)`` in L2 with ``c`` the
  largest number of windows holding one input.

The margins ``g_j = f_label - f_j`` compose the output's rows with the last affine node
when it has one input (``||C L||`` in the dual norm, times its input's constant), else
``||c_j||_* lip(output)``.  Every computed norm is widened by the float64 slack rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from verinet.bounds.fp import Slack
from verinet.bounds.graph import GraphModel
from verinet.bounds.graph import activations as act
from verinet.bounds.graph import affine as aff
from verinet.bounds.graph.maxpool import MaxPoolRule
from verinet.certify.crown_radius import margin_rows
from verinet.lipschitz.jacobian import DUAL, NORMS, abs_transpose
from verinet.types import Guarantee, InputError

POWER_ITERATIONS = 50
DENSE_SVD = 1024  # convolutions up to this many inputs and outputs: SVD of the matrix


@dataclass(frozen=True)
class NodeNorm:
    """One node: ``op_norm`` bounds its own map's operator norm, ``estimate`` (affine
    nodes, L2) is power iteration's lower bound of it, ``lip`` bounds the Lipschitz
    constant of the node's value as a function of the network input."""

    name: str
    op: str
    op_norm: float
    lip: float
    estimate: float | None = None


@dataclass(frozen=True)
class GlobalLipschitz:
    """The node-by-node bounds (``nodes``, topological order) and the output's."""

    norm: str
    nodes: tuple[NodeNorm, ...]
    output: float
    rows_norm: tuple[tuple[float, ...], ...]
    guarantee: Guarantee = Guarantee.SOUND

    def margins(self, label: int) -> np.ndarray:
        """(m-1,) bounds of the Lipschitz constants of ``f_label - f_j`` (j != label, in
        order), each from the perturbation norm to the absolute value."""
        return np.asarray(self.rows_norm[label], dtype=np.float64)


def global_lipschitz(gm: GraphModel, norm: str = "linf") -> GlobalLipschitz:
    """Bounds of the module doc for the network of ``gm`` (float64, CPU)."""
    if norm not in NORMS:
        raise InputError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")
    gm.check()
    rules = gm.rules_on(torch.float64, "cpu")
    slack = Slack.for_dtype(torch.float64, gm.roundings())
    lip: dict[str, float] = {gm.input_name: 1.0}
    nodes: list[NodeNorm] = []
    with torch.no_grad():
        for name in gm.order[1:]:
            rule = rules[name]
            ins = [i for i in gm.inputs[name] if i in gm.shape]
            est = None
            if isinstance(rule, aff.SumRule):
                op_norm, value = 1.0, lip[ins[0]] + lip[ins[1]]
            elif isinstance(rule, aff.ConcatRule):
                parts = [lip[i] for i in ins]
                op_norm = 1.0
                value = (max(parts) if norm == "linf" else
                         math.sqrt(sum(v * v for v in parts)) if norm == "l2" else sum(parts))
            elif getattr(rule, "linear", False):
                op_norm = affine_norm(gm, name, rule, norm)
                if norm == "l2":
                    est = power_estimate(gm, name, rule)
                value = op_norm * lip[ins[0]]
            else:
                op_norm = activation_norm(rule, norm)
                value = op_norm * lip[ins[0]]
            value = float(slack.upper(value, value))
            lip[name] = value
            nodes.append(NodeNorm(name, type(rule).__name__, float(op_norm), value, est))
    rows = _margin_rows(gm, rules, norm, lip, slack)
    return GlobalLipschitz(norm, tuple(nodes), lip[gm.output_name], rows)


def _margin_rows(gm: GraphModel, rules: dict[str, object], norm: str, lip: dict[str, float],
                 slack: Slack) -> tuple[tuple[float, ...], ...]:
    """Per label: the constants of every margin (the label's own column left out)."""
    m = gm.network.n_outputs
    out = gm.output_name
    rule = rules[out]
    ins = [i for i in gm.inputs.get(out, ()) if i in gm.shape]
    composed = getattr(rule, "linear", False) and len(ins) == 1
    per_label = []
    for label in range(m):
        C = torch.as_tensor(margin_rows(label, m))
        if composed:
            rows = rule.lin_t(C.reshape((C.shape[0],) + gm.shape[out]))[0]  # type: ignore[attr-defined]
            base = lip[ins[0]]
        else:
            rows, base = C, lip[out]
        r = rows.reshape(rows.shape[0], -1).abs()
        dual = DUAL[norm]
        n = (r.sum(-1) if dual == "l1" else r.square().sum(-1).sqrt() if dual == "l2"
             else r.amax(-1))
        vals = [float(slack.upper(v * base, v * base)) for v in n.tolist()]
        per_label.append(tuple(vals))
    return tuple(per_label)


def affine_norm(gm: GraphModel, name: str, rule: object, norm: str) -> float:
    """The operator norm ``p -> p`` of an affine node's linear part (module doc)."""
    z = [i for i in gm.inputs[name] if i in gm.shape][0]
    ones_in = torch.ones((1,) + gm.shape[z], dtype=torch.float64)
    ones_out = torch.ones((1,) + gm.shape[name], dtype=torch.float64)
    row_sums = float(rule.alin([ones_in]).max())  # type: ignore[attr-defined]
    col_sums = float(abs_transpose(rule, ones_out)[0].max())
    if norm == "linf":
        return row_sums
    if norm == "l1":
        return col_sums
    bound = math.sqrt(row_sums * col_sums)
    if isinstance(rule, aff.LinearRule):
        bound = min(bound, _spectral(np.asarray(rule.weight)))
    elif isinstance(rule, aff.ConvRule):
        n_in, n_out = gm.size(z), gm.size(name)
        if max(n_in, n_out) <= DENSE_SVD:  # small: the exact matrix is cheap
            eye = torch.eye(n_in, dtype=torch.float64).reshape((n_in,) + gm.shape[z])
            dense = rule.lin([eye]).reshape(n_in, -1).numpy()  # type: ignore[attr-defined]
            bound = min(bound, _spectral(dense))
        else:
            bound = min(bound, conv_spectral_bound(rule))
    return bound


def _spectral(W: np.ndarray) -> float:
    s = float(np.linalg.norm(W, 2)) if W.size else 0.0
    # LAPACK's singular values are within a small multiple of n u ||W|| (rel 1e-10 covers)
    return float(Slack().upper(s, s))


def conv_spectral_bound(rule: aff.ConvRule) -> float:
    """The L2 operator norm bound of a convolution from its circulant embedding."""
    W = np.asarray(rule.weight if isinstance(rule.weight, np.ndarray) else rule.weight.numpy())
    cout, cin_g, kh, kw = W.shape
    g = rule.groups
    dh, dw = rule.dilations
    kh2, kw2 = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    full = np.zeros((cout, cin_g * g, kh2, kw2))
    per = cout // g
    for k in range(g):
        rows = slice(k * per, (k + 1) * per)
        full[rows, k * cin_g:(k + 1) * cin_g, ::dh, ::dw] = W[rows]
    _, h, w = rule.in_shape
    t, left, b, r = rule.pads
    nh, nw = h + t + b + kh2 - 1, w + left + r + kw2 - 1
    spec = np.fft.fft2(full, s=(nh, nw))               # (cout, cin, nh, nw)
    mats = np.moveaxis(spec, (0, 1), (-2, -1)).reshape(-1, cout, cin_g * g)
    s = float(np.linalg.norm(mats, ord=2, axis=(1, 2)).max())
    # FFT entries are within c log2(N) u sum|k| of the exact DFT: widen by the slack rule
    mag = math.sqrt(cout * cin_g * g) * float(np.abs(full).sum(axis=(2, 3)).max())
    return float(Slack.for_dtype(np.float64, nh * nw + cout * cin_g * g).upper(s, mag))


def power_estimate(gm: GraphModel, name: str, rule: object,
                   iterations: int = POWER_ITERATIONS, seed: int = 0) -> float:
    """Power iteration on ``L^T L`` through the rule's maps: ``||L v|| / ||v||`` for the
    last iterate, a lower bound of the L2 operator norm (0 for a zero map)."""
    z = [i for i in gm.inputs[name] if i in gm.shape][0]
    gen = torch.Generator().manual_seed(seed)
    v = torch.randn((1,) + gm.shape[z], generator=gen, dtype=torch.float64)
    est = 0.0
    for _ in range(iterations):
        nv = v.norm()
        if nv == 0:
            return 0.0
        v = v / nv
        u = rule.lin([v])  # type: ignore[attr-defined]
        est = float(u.norm())
        v = rule.lin_t(u)[0]  # type: ignore[attr-defined]
    return est


def activation_norm(rule: object, norm: str) -> float:
    """The Lipschitz constant ``p -> p`` of a nonlinear node (module doc)."""
    if isinstance(rule, (act.ReluRule, act.ClipRule)):
        return 1.0
    if isinstance(rule, act.LeakyReluRule):
        return max(1.0, float(rule.alpha))
    if isinstance(rule, act.SmoothRule):
        return 0.25 if rule.kind == "sigmoid" else 1.0
    if isinstance(rule, MaxPoolRule):
        if norm == "linf":
            return 1.0
        c = float(_overlap(rule).max())
        return c if norm == "l1" else math.sqrt(c)
    raise TypeError(f"no Lipschitz constant for {type(rule).__name__}")


def _overlap(rule: MaxPoolRule) -> Tensor:
    w = rule.window
    cols = torch.ones((1, 1, w.kk) + tuple(w.out_hw), dtype=torch.float64)
    return w.fold(cols)

