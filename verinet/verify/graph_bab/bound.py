"""Bounding a batch of graph domains (beta-CROWN on the graph).

A domain narrows the pre-activation interval of some root units to ``[l', u']`` (``lo``,
``hi`` (N, U); the root's interval where no cut was made).  Its bounds of ``C f(x) - b``
come from one back-substitution in which

* every cut unit is relaxed on its own interval (a ReLU cut at 0 is exact), free
  ReLU-like units use the lower slope ``alpha`` in [0, 1] (one per domain and unit),
  Sigmoid/Tanh units CROWN's lines on their interval;
* each cut side adds a Lagrangian term: ``beta_lo (l' - z)`` for a raised lower end,
  ``beta_hi (z - u')`` for a lowered upper end (``beta >= 0``); both are ``<= 0`` on the
  domain, so the result stays a lower bound of ``C f(x) - b`` there.

Every alpha in [0, 1] and beta >= 0 give a sound bound, so they are optimised by
projected Adam ascent on a float32 surrogate (the best row per domain; a domain whose
surrogate bound is positive leaves the ascent), and the best parameters are then bounded
soundly in float64 with the engine's float slack (:mod:`verinet.bounds.graph.propagate`).
The same pass yields the branching decision (BaBSR or intercept scores on the
coefficients that reach each ReLU-like node; for Sigmoid/Tanh units the gap between the
relaxation's lines at the interval's midpoint times the coefficient) and a primal
candidate (the box vertex minimising the best row's linear lower bound).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from verinet.bounds.branching import SCORES, branch_scores
from verinet.bounds.graph.activations import Relaxation
from verinet.bounds.graph.propagate import GraphState, backward, concretize
from verinet.optim import Adam
from verinet.verify.graph_bab.options import GraphSplitOptions
from verinet.verify.graph_bab.root import GraphRoot

LOW = torch.float32
@dataclass(frozen=True)
class Params:
    """Per domain: ``alpha`` (N, U, 2) relaxation parameters in [0, 1] (ReLU-like units:
    the lower slope in ``[..., 0]``; Sigmoid/Tanh: the upper and lower lines' tangent
    points); ``beta_lo`` / ``beta_hi`` (N, U) multipliers of the raised lower / lowered
    upper interval ends."""

    alpha: Tensor
    beta_lo: Tensor
    beta_hi: Tensor


@dataclass(frozen=True)
class Bounded:
    """Per domain: ``lower`` (N, K) sound lower bounds of ``C f(x) - b``; the best
    parameters; ``branch`` (N,) the flat unit to cut next (-1: none can be cut); ``point``
    (N,) where; ``x`` (N, n) primal candidates; ``coef``, ``const``, ``mag`` the bound's
    input coefficients (N, K, n), constant and float magnitude (N, K) (it can be
    concretized over a smaller box: :func:`~verinet.bounds.graph.propagate.concretize`)."""

    lower: Tensor
    alpha: Tensor
    beta_lo: Tensor
    beta_hi: Tensor
    branch: Tensor
    point: Tensor
    x: Tensor
    coef: Tensor
    const: Tensor
    mag: Tensor


def unit_intervals(root: GraphRoot, st: GraphState, lo: Tensor,
                   hi: Tensor) -> list[tuple[Tensor, Tensor]]:
    """Per split node, the domains' intervals of every unit (N, size) in ``st``'s dtype:
    the root's, narrowed to ``lo``/``hi`` (N, U) at the cut units."""
    out = []
    N = lo.shape[0]
    for i, z in enumerate(root.inputs):
        idx = root.index[i]
        z_lo = st.lo[z].reshape(1, -1).expand(N, -1)
        z_hi = st.hi[z].reshape(1, -1).expand(N, -1)
        if len(idx):
            z_lo, z_hi = z_lo.clone(), z_hi.clone()
            z_lo[:, idx] = torch.maximum(z_lo[:, idx], root.block(lo, i).to(z_lo.dtype))
            z_hi[:, idx] = torch.minimum(z_hi[:, idx], root.block(hi, i).to(z_hi.dtype))
            z_hi[:, idx] = torch.maximum(z_hi[:, idx], z_lo[:, idx])
        out.append((z_lo, z_hi))
    return out


def split_relaxations(root: GraphRoot, st: GraphState, intervals: list[tuple[Tensor, Tensor]],
                      alpha: Tensor) -> dict[str, object]:
    """The relaxations of the split nodes for every domain (in ``st``'s dtype)."""
    out: dict[str, object] = {}
    for i, (n, z) in enumerate(zip(root.nodes, root.inputs, strict=True)):
        z_lo, z_hi = intervals[i]
        N = z_lo.shape[0]
        full = (N, 1) + st.gm.shape[z]
        p = st.params[n]
        assert p is not None
        P = p.shape[0]
        p = p.reshape(P, 1, -1).expand(P, N, -1)
        idx = root.index[i]
        if len(idx):  # the domains' own parameters
            p = p.clone()
            p[:, :, idx] = root.block(alpha, i)[..., :P].permute(2, 0, 1).to(p.dtype)
        out[n] = st.rules[n].relax(z_lo.reshape(full), z_hi.reshape(full),  # type: ignore[attr-defined]
                                   p.reshape((P,) + full), st.slack)
    return out


def _lagrangian(root: GraphRoot, st: GraphState, intervals: list[tuple[Tensor, Tensor]],
                prm: Params, K: int) -> tuple[dict[str, Tensor], Tensor, Tensor]:
    """Coefficients ``beta_hi - beta_lo`` on every split node's input (N, K, *s), and the
    constant ``sum beta_lo l' - beta_hi u'`` (N, 1) with its magnitude."""
    add: dict[str, Tensor] = {}
    N = prm.alpha.shape[0]
    dt = st.options.dtype
    const = torch.zeros((N, 1), dtype=dt)
    mag = torch.zeros((N, 1), dtype=dt)
    for i, z in enumerate(root.inputs):
        idx = root.index[i]
        if not len(idx):
            continue
        b_lo, b_hi = root.block(prm.beta_lo, i).to(dt), root.block(prm.beta_hi, i).to(dt)
        l_, u_ = intervals[i][0][:, idx], intervals[i][1][:, idx]
        full = torch.zeros((N, st.gm.size(z)), dtype=dt)
        add[z] = full.index_add(1, idx, b_hi - b_lo).reshape((N, 1) + st.gm.shape[z]).expand(
            (N, K) + st.gm.shape[z])
        terms = b_lo * l_ - b_hi * u_
        const = const + terms.sum(1, keepdim=True)
        mag = mag + (b_lo * l_).abs().sum(1, keepdim=True) + (b_hi * u_).abs().sum(1,
                                                                                 keepdim=True)
    return add, const, mag


def objective(root: GraphRoot, st: GraphState, lo: Tensor, hi: Tensor, prm: Params,
              C: Tensor, b: Tensor, taps: dict[str, Tensor | None] | None = None,
              track: bool = True
              ) -> tuple[Tensor, Tensor, dict[str, object], tuple[Tensor, Tensor]]:
    """Lower bounds (N, K) of ``C f(x) - b`` in ``st``'s dtype (sound with ``track``, the
    float slack's magnitudes; a surrogate without), the input coefficients (N, K, n), the
    split nodes' relaxations and the constant and magnitude (N, K) that
    :func:`~verinet.bounds.graph.propagate.concretize` took with the coefficients (so
    that the same bound can be concretized over smaller boxes)."""
    gm = st.gm
    N, K = C.shape[:2]
    A = C.to(st.options.dtype).reshape((N, K) + gm.shape[gm.output_name])
    intervals = unit_intervals(root, st, lo, hi)
    relax = split_relaxations(root, st, intervals, prm.alpha)
    add, lag, lag_mag = _lagrangian(root, st, intervals, prm, K)
    coef, const, mag = backward(st, gm.output_name, A, relax, add, taps, track)
    b = b.to(st.options.dtype)
    const, mag = const + lag - b, mag + lag_mag + b.abs()
    return concretize(st, coef, const, mag), coef, relax, (const, mag)


def _tightened(root: GraphRoot, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    """Masks (N, U) of raised lower and lowered upper ends (where a beta can act)."""
    r_lo, r_hi = root.unit_bounds()
    return lo.to(torch.float64) > r_lo, hi.to(torch.float64) < r_hi


def optimise(root: GraphRoot, lo: Tensor, hi: Tensor, prm: Params, C: Tensor, b: Tensor,
             options: GraphSplitOptions, stop: Callable[[], bool] | None) -> Params:
    """Projected Adam ascent on the best row's float32 surrogate bound; the best
    parameters per domain."""
    up, down = _tightened(root, lo, hi)
    alpha = prm.alpha.detach().to(LOW).clamp(0.0, 1.0)
    b_lo = torch.where(up, prm.beta_lo.detach().to(LOW).clamp(min=0.0), 0.0)
    b_hi = torch.where(down, prm.beta_hi.detach().to(LOW).clamp(min=0.0), 0.0)
    if options.iterations == 0 or root.size == 0:
        return Params(alpha, b_lo, b_hi)
    best_p = [alpha.clone(), b_lo.clone(), b_hi.clone()]
    best = torch.full((alpha.shape[0],), -torch.inf, dtype=LOW)
    act = torch.arange(alpha.shape[0])
    work = [t.requires_grad_(True) for t in (alpha, b_lo, b_hi)]
    opt = Adam(work, lr=[options.lr_alpha, options.lr_beta, options.lr_beta])
    C, b = C.to(LOW), b.to(LOW)
    for it in range(options.iterations + 1):
        val = objective(root, root.low, lo, hi, Params(*work), C, b,
                        track=False)[0].max(dim=1).values
        with torch.no_grad():
            better = val > best[act]
            rows = act[better]
            best[rows] = val[better]
            for keep_p, w in zip(best_p, work, strict=True):
                keep_p[rows] = w[better]
            done = best[act] > 0
        if it == options.iterations or bool(done.all()) or (stop is not None and stop()):
            break
        opt.ascend(val.nan_to_num(nan=0.0, neginf=-1e30).sum())
        with torch.no_grad():
            work[0].clamp_(0.0, 1.0)
            work[1].clamp_(min=0.0)
            work[2].clamp_(min=0.0)
            work[1][~up] = 0.0
            work[2][~down] = 0.0
        n_done = int(done.sum())
        if n_done and 8 * n_done >= len(act):
            keep = torch.nonzero(~done).reshape(-1)
            act, lo, hi, C, b = act[keep], lo[keep], hi[keep], C[keep], b[keep]
            up, down = up[keep], down[keep]
            work = opt.keep_rows(keep)
    return Params(*best_p)


def bound_domains(root: GraphRoot, lo: Tensor, hi: Tensor, prm: Params, C: Tensor, b: Tensor,
                  options: GraphSplitOptions, stop: Callable[[], bool] | None = None) -> Bounded:
    """Bound every domain (``C`` (N, K, m), ``b`` (N, K)); see the module docstring."""
    prm = optimise(root, lo, hi, prm, C, b, options, stop)
    taps: dict[str, Tensor | None] = {n: None for n in root.nodes}
    with torch.no_grad():
        lower, coef, relax, (const, mag) = objective(root, root.state, lo, hi, prm, C, b, taps)
        lower = lower.nan_to_num(nan=-torch.inf, posinf=-torch.inf)
        best = lower.argmax(dim=1)
        pick = torch.arange(len(best))
        x_lo = root.state.lo[root.gm.input_name].reshape(1, -1)
        x_hi = root.state.hi[root.gm.input_name].reshape(1, -1)
        x = torch.where(coef[pick, best] >= 0, x_lo, x_hi)
        branch, point = choose_cut(root, lo, hi, taps, relax, pick, best, options, (prm, C, b))
    return Bounded(lower, prm.alpha, prm.beta_lo, prm.beta_hi, branch, point, x, coef, const,
                   mag)


def cut_points(root: GraphRoot, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    """Where each unit would be cut (N, U; float32, strictly inside its interval) and
    whether it can be: ReLU-like units at 0 while unstable; others at 0 when the interval
    contains it, else at the midpoint."""
    mid = ((lo.to(torch.float64) + hi.to(torch.float64)) / 2.0).to(lo.dtype)
    straddles = (lo < 0) & (hi > 0)
    m = torch.where(straddles, torch.zeros_like(lo), mid)
    ok = (lo < m) & (m < hi)
    ok = torch.where(root.phased, straddles, ok)
    return m, ok


def choose_cut(root: GraphRoot, lo: Tensor, hi: Tensor, taps: dict[str, Tensor | None],
               relax: dict[str, object], pick: Tensor, best: Tensor, options: GraphSplitOptions,
               fsb: tuple[Params, Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
    """The unit to cut per domain (-1 when none can be) and the cut point.  ReLU-like
    units come first (their cuts are exact); "fsb" (filtered smart branching) ranks the
    top candidates of the BaBSR and intercept scores by the worse child's bound, the
    parameters ``fsb`` = (params, C, b) fixed (a heuristic estimate, no float slack)."""
    N = lo.shape[0]
    if root.size == 0:
        return torch.full((N,), -1, dtype=torch.long), torch.zeros(N, dtype=lo.dtype)
    lams, gaps = [], []
    for n, z, idx in zip(root.nodes, root.inputs, root.index, strict=True):
        a = taps[n]
        lam = (torch.zeros((N, len(idx)), dtype=torch.float64) if a is None
               else a[pick, best].reshape(N, -1)[:, idx].to(torch.float64))
        lams.append(lam)
        r = relax[n]
        assert isinstance(r, Relaxation)
        mid = ((root.state.lo[z] + root.state.hi[z]) / 2.0).reshape(1, -1)[:, idx]
        g = ((r.a_up - r.a_lo).reshape(N, -1)[:, idx] * mid
             + (r.c_up - r.c_lo).reshape(N, -1)[:, idx])
        gaps.append(lam.abs() * g.clamp(min=0.0))
    lam, gap = torch.cat(lams, dim=1), torch.cat(gaps, dim=1)
    m, ok = cut_points(root, lo, hi)
    u_lo, u_hi = lo.to(torch.float64), hi.to(torch.float64)
    has_relu = (ok & root.phased).any(dim=1, keepdim=True)
    usable = ok & torch.where(has_relu, root.phased, ~root.phased)
    kinds = SCORES if options.branching == "fsb" else (options.branching,)
    scores = [torch.where(usable, torch.where(root.phased, branch_scores(k, lam, u_lo, u_hi,
                                                                          root.bias), gap),
                          -torch.inf) for k in kinds]
    k = options.fsb_candidates if options.branching == "fsb" and fsb is not None else 1
    k = min(k, root.size)
    tops = [sc.topk(k, dim=1) for sc in scores]
    pos = torch.cat([t.indices for t in tops], dim=1)
    valid = torch.cat([torch.isfinite(t.values) for t in tops], dim=1)
    if pos.shape[1] > 1 and fsb is not None:
        est = _child_estimates(root, lo, hi, m, pos, *fsb)
        choice = pos.gather(1, torch.where(valid, est, -torch.inf).argmax(1, keepdim=True))[:, 0]
    else:
        choice = pos[:, 0]
    can = usable.any(dim=1)
    point = m[torch.arange(N), choice]
    return torch.where(can, choice, -1), point


def _child_estimates(root: GraphRoot, lo: Tensor, hi: Tensor, m: Tensor, pos: Tensor,
                     prm: Params, C: Tensor, b: Tensor) -> Tensor:
    """(N, K) surrogate bound of the worse child of cutting each candidate ``pos``."""
    N, Kc = pos.shape
    rep = torch.arange(N).repeat_interleave(2 * Kc)
    p = pos.repeat_interleave(2, dim=1).reshape(-1)
    side = torch.arange(2).repeat(N * Kc)
    rows = torch.arange(len(p))
    c_lo, c_hi = lo[rep].clone(), hi[rep].clone()
    cut = m[rep, p]
    c_hi[rows[side == 0], p[side == 0]] = cut[side == 0]
    c_lo[rows[side == 1], p[side == 1]] = cut[side == 1]
    sub = Params(prm.alpha[rep], prm.beta_lo[rep], prm.beta_hi[rep])
    with torch.no_grad():
        val = objective(root, root.low, c_lo, c_hi, sub, C[rep].to(LOW), b[rep].to(LOW),
                        track=False)[0]
    return val.max(dim=1).values.reshape(N, Kc, 2).min(dim=2).values.to(torch.float64)
