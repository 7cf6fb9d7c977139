"""Sound interval bounds on the Jacobian of ``C f`` over input boxes (Fast-Lip on the graph).

For a box ``X`` the engine's bounds of every node (:func:`~verinet.bounds.graph.build_state`,
CROWN intermediate bounds) bound each activation's derivative on ``X``: ReLU ``1`` /
``0`` / ``[0, 1]`` for active / inactive / unstable units, LeakyReLU ``[min(a, 1), max(a,
1)]`` where unstable, Clip ``[0, 1]`` where a kink is crossed, Sigmoid/Tanh ``[min
f'(l), f'(u)], f'(clip(0, l, u))]`` (``f'`` is unimodal with its peak at 0), and a MaxPool
window routes the gradient to one of its *candidates* (the units whose upper bound
reaches the window's largest lower bound): ``1`` to a sole candidate, ``[0, 1]`` to each
of several, ``0`` to the rest.  Walking the graph backwards from the rows ``C`` (Weng et
al., "Towards Fast Computation of Certified Robustness for ReLU Networks", ICML 2018) an
interval of coefficients ``[M - R, M + R]`` goes through an affine node exactly in the
midpoint (``L^T M``) and through ``|L|^T R`` in the radius, through an activation by the
interval product with its derivative bounds, and sums where a node fans out.  The result
holds every generalised (Clarke) gradient of every row on the box: for piecewise-linear
networks each linear piece's gradient and their convex hull, for smooth activations the
chain rule's.

**Floating point.**  Alongside ``(M, R)`` the walk carries a magnitude ``G`` (``|L|^T G``,
times the largest derivative at activations) that bounds ``|M| + R`` and every term formed;
the norms returned are widened by the model's slack rule on ``G``
(:meth:`~verinet.bounds.graph.GraphModel.slack`), so they bound the real-valued Jacobian.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor

from verinet.bounds.graph import GraphModel, GraphOptions, build_state
from verinet.bounds.graph import activations as act
from verinet.bounds.graph import affine as aff
from verinet.bounds.graph.maxpool import MaxPoolRule
from verinet.bounds.graph.propagate import GraphState
from verinet.types import InputError, UnsupportedModelError

NORMS = ("linf", "l2", "l1")
DUAL = {"linf": "l1", "l2": "l2", "l1": "linf"}


@dataclass(frozen=True)
class JacobianBounds:
    """Per box and row: ``mid``/``rad`` (B, K, n) with every gradient of row ``k`` on box
    ``b`` inside ``[mid - rad, mid + rad]``; ``mag`` (B, K, n) bounds ``|mid| + rad`` and
    every term of their computation (the float slack's magnitude)."""

    mid: Tensor
    rad: Tensor
    mag: Tensor
    slack: object

    def dual_norms(self, norm: str) -> np.ndarray:
        """(B, K) sound upper bounds of ``||grad row_k||_*`` on each box, ``*`` the dual of
        the perturbation ``norm`` (``linf`` -> L1, ``l2`` -> L2, ``l1`` -> L-inf)."""
        if norm not in NORMS:
            raise InputError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")
        top = self.mid.abs() + self.rad
        if norm == "linf":
            val, mag = top.sum(-1), self.mag.sum(-1)
        elif norm == "l2":
            val, mag = top.square().sum(-1).sqrt(), self.mag.square().sum(-1).sqrt()
        else:
            val, mag = top.amax(-1), self.mag.amax(-1)
        # one more rounding per summed entry and the square root: the rule's n covers them
        return (val + self.slack(mag)).cpu().numpy()  # type: ignore[operator]


    def variation(self, radius: np.ndarray) -> np.ndarray:
        """(B, K) sound upper bounds of ``|row_k(f(x)) - row_k(f(c))|`` for ``|x - c| <=
        radius`` coordinate-wise ((B, n) or (n,)), ``x`` and ``c`` in the box: the mean
        value theorem with the gradient bounds."""
        r = torch.as_tensor(np.asarray(radius, dtype=np.float64), dtype=self.mid.dtype,
                            device=self.mid.device)
        r = r.reshape(-1, 1, self.mid.shape[-1])
        val = ((self.mid.abs() + self.rad) * r).sum(-1)
        return (val + self.slack((self.mag * r).sum(-1))).cpu().numpy()  # type: ignore[operator]


def jacobian_bounds(gm: GraphModel, lo: np.ndarray, hi: np.ndarray, C: np.ndarray,
                    options: GraphOptions | None = None) -> JacobianBounds:
    """Interval bounds of the Jacobian of ``C f`` (C (K, m) shared, or (B, K, m) per box)
    over each box ``lo``/``hi`` (B, n), by the backward walk of the module doc."""
    options = options or GraphOptions()
    gm.check()
    lo_t = torch.as_tensor(np.asarray(lo, dtype=np.float64).reshape(len(lo), -1))
    hi_t = torch.as_tensor(np.asarray(hi, dtype=np.float64).reshape(len(hi), -1))
    C = np.asarray(C, dtype=np.float64)
    if C.ndim not in (2, 3) or C.shape[-1] != gm.network.n_outputs or (
            C.ndim == 3 and C.shape[0] != len(lo)):
        raise InputError(f"C must have shape (k, {gm.network.n_outputs}) or (B, k, "
                         f"{gm.network.n_outputs}), got {C.shape}")
    with torch.no_grad():
        st = build_state(gm, lo_t, hi_t, options)
        return _walk(st, torch.as_tensor(C, dtype=options.dtype, device=options.device))


def _walk(st: GraphState, C: Tensor) -> JacobianBounds:
    gm = st.gm
    B, K = st.batch, C.shape[-2]
    out = gm.output_name
    start = C.expand(B, K, -1).reshape((B * K,) + gm.shape[out])
    acc: dict[str, list[Tensor]] = {out: [start, torch.zeros_like(start), start.abs()]}
    for name in reversed(gm.order[1:]):
        if name not in acc:
            continue
        M, R, G = acc.pop(name)
        rule = st.rules[name]
        ins = st.dyn_inputs(name)
        if getattr(rule, "linear", False):
            parts = zip(rule.lin_t(M), abs_transpose(rule, R), abs_transpose(rule, G),  # type: ignore[attr-defined]
                        strict=True)
        else:
            parts = iter([_through_nonlinear(st, name, rule, M, R, G, K)])
        for i, (m, r, g) in zip(ins, parts, strict=True):
            if i in acc:
                acc[i][0] = acc[i][0] + m
                acc[i][1] = acc[i][1] + r
                acc[i][2] = acc[i][2] + g
            else:
                acc[i] = [m, r, g]
    name0 = gm.input_name
    n = gm.size(name0)
    if name0 not in acc:  # the output does not depend on the input (GraphModel refuses)
        raise UnsupportedModelError([("Network", out, "output does not depend on the input")],
                                    "Lipschitz bounds")
    M, R, G = (t.reshape(B, K, n) for t in acc[name0])
    return JacobianBounds(M, R, G, st.slack)


def abs_transpose(rule: object, R: Tensor) -> list[Tensor]:
    """``|L|^T R`` for an affine rule: its transpose with every coefficient's absolute
    value (``R`` >= 0).  Rules whose coefficients are all >= 0 reuse their transpose."""
    if isinstance(rule, aff.LinearRule):
        return [R @ rule.absw]  # type: ignore[operator]
    if isinstance(rule, aff.ConvRule):
        return replace(rule, weight=rule.absw).lin_t(R)
    if isinstance(rule, aff.ScaleRule):
        s = rule.scale
        return replace(rule, scale=None if s is None else s.abs()).lin_t(R)  # type: ignore[union-attr]
    if isinstance(rule, aff.SumRule):
        return replace(rule, signs=(1.0, 1.0)).lin_t(R)
    if isinstance(rule, (aff.ReshapeRule, aff.TransposeRule, aff.ConcatRule, aff.AvgPoolRule,
                         aff.GlobalAvgPoolRule)):
        return rule.lin_t(R)  # nonnegative coefficients
    raise TypeError(f"no |L|^T for {type(rule).__name__}")


def _through_nonlinear(st: GraphState, name: str, rule: object, M: Tensor, R: Tensor,
                       G: Tensor, K: int) -> tuple[Tensor, Tensor, Tensor]:
    z = st.gm.inputs[name][0]
    zl, zh = st.lo[z], torch.maximum(st.hi[z], st.lo[z])
    if isinstance(rule, MaxPoolRule):
        return _through_maxpool(rule, zl, zh, M, R, G, K)
    d_lo, d_hi = derivative_bounds(rule, zl, zh)
    B = zl.shape[0]
    shape = (B, K) + tuple(zl.shape[1:])
    d_lo, d_hi = d_lo.unsqueeze(1), d_hi.unsqueeze(1)
    m, r, g = M.reshape(shape), R.reshape(shape), G.reshape(shape)
    a, b = m - r, m + r
    prods = torch.stack([a * d_lo, a * d_hi, b * d_lo, b * d_hi])
    top, bot = prods.amax(0), prods.amin(0)
    dmax = torch.maximum(d_lo.abs(), d_hi.abs())
    flat = (B * K,) + tuple(zl.shape[1:])
    return (((top + bot) / 2).reshape(flat), ((top - bot) / 2).reshape(flat),
            (g * dmax).reshape(flat))


def derivative_bounds(rule: object, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    """Bounds ``[d_lo, d_hi]`` of the (generalised) derivative of an elementwise
    activation on ``[lo, hi]`` (module doc)."""
    one, zero = torch.ones_like(lo), torch.zeros_like(lo)
    if isinstance(rule, act.ReluRule):
        return torch.where(lo >= 0, one, zero), torch.where(hi > 0, one, zero)
    if isinstance(rule, act.LeakyReluRule):
        a = torch.full_like(lo, rule.alpha)
        lin = torch.where(lo >= 0, one, torch.where(hi <= 0, a, -one))  # -1: both pieces
        both = lin < 0
        return (torch.where(both, torch.minimum(a, one), lin),
                torch.where(both, torch.maximum(a, one), lin))
    if isinstance(rule, act.ClipRule):
        a, b = rule._ends(lo)  # noqa: SLF001 -- the rule's own kink positions
        if rule.lo_c is not None and rule.hi_c is not None and rule.lo_c > rule.hi_c:
            return zero, zero  # constant
        inside = (lo >= a) & (hi <= b)
        flat = (hi <= a) | (lo >= b)
        return torch.where(inside, one, zero), torch.where(flat, zero, one)
    if isinstance(rule, act.SmoothRule):
        peak = rule.df(torch.minimum(torch.maximum(zero, lo), hi))
        low = torch.minimum(rule.df(lo), rule.df(hi))
        return low.clamp(min=0.0), peak
    raise TypeError(f"no derivative bounds for {type(rule).__name__}")


def _through_maxpool(rule: MaxPoolRule, zl: Tensor, zh: Tensor, M: Tensor, R: Tensor,
                     G: Tensor, K: int) -> tuple[Tensor, Tensor, Tensor]:
    """The gradient of each window's output goes to one of its candidates (module doc)."""
    cl, ch = rule._cols(zl, zh)  # noqa: SLF001 -- (B, C, kk, Ho, Wo) window columns
    lmax = cl.amax(dim=-3, keepdim=True)
    cand = torch.isfinite(cl) & (ch >= lmax)
    sole = cand & (cand.sum(dim=-3, keepdim=True) == 1)
    s_lo = sole.to(zl.dtype).unsqueeze(1)   # (B, 1, C, kk, Ho, Wo)
    s_hi = cand.to(zl.dtype).unsqueeze(1)
    B = zl.shape[0]
    out = (B, K) + tuple(cl.shape[1:2]) + (1,) + tuple(cl.shape[3:])
    m, r, g = (t.reshape(out) for t in (M, R, G))
    a, b = m - r, m + r
    prods = torch.stack([a * s_lo, a * s_hi, b * s_lo, b * s_hi])
    top, bot = prods.amax(0), prods.amin(0)
    cols = (B * K,) + tuple(cl.shape[1:])
    w = rule.window
    fold = [w.fold(t.reshape(cols)) for t in ((top + bot) / 2, (top - bot) / 2,
                                               (g * s_hi).expand_as(top))]
    return fold[0], fold[1], fold[2]
