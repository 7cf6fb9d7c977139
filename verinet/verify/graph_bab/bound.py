"""Bounding a batch of graph domains (beta-CROWN on the graph).

A domain fixes the phase of some root-unstable units (``split`` (N, U): +1 active, -1
inactive, 0 free).  Its bounds of ``C f(x) - b`` come from one back-substitution in which

* each split unit's pre-activation interval is the root's clamped by the split (active:
  ``l := 0``; inactive: ``u := 0``), so its relaxation is exact;
* free unstable units use the lower slope ``alpha`` in [0, 1] (one per domain and unit);
* each split unit ``z_i`` adds the Lagrangian term ``beta_i s_i z_i`` (``s = -1`` active,
  ``+1`` inactive, ``beta >= 0``): the term is ``<= 0`` on the domain, so the result stays
  a lower bound of ``C f(x) - b`` there.

Every alpha in [0, 1] and beta >= 0 give a sound bound, so they are optimised by
projected Adam ascent on a float32 surrogate (the best row per domain; a domain whose
surrogate bound is positive leaves the ascent), and the best parameters are then bounded
soundly in float64 with the engine's float slack (:mod:`verinet.bounds.graph.propagate`).
The same pass yields the branching decision (:mod:`verinet.bounds.branching` scores on
the coefficients that reach each split node) and a primal candidate (the box vertex
minimising the best row's linear lower bound).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from verinet.bounds.branching import SCORES, branch_scores, candidates
from verinet.bounds.graph.propagate import GraphState, backward, concretize
from verinet.optim import Adam
from verinet.types import InputError
from verinet.verify.graph_bab.root import GraphRoot

LOW = torch.float32


@dataclass(frozen=True)
class GraphSplitOptions:
    iterations: int = 20      # Adam steps on alpha and beta per bounding
    lr_alpha: float = 0.1
    lr_beta: float = 0.05
    branching: str = "babsr"  # babsr | intercept

    def __post_init__(self) -> None:
        if self.branching not in SCORES:
            raise InputError(f"branching must be one of {SCORES}, got {self.branching!r}")
        if self.iterations < 0 or not (self.lr_alpha > 0 and self.lr_beta > 0):
            raise InputError("need iterations >= 0 and positive learning rates")


@dataclass(frozen=True)
class Bounded:
    """Per domain: ``lower`` (N, K) sound lower bounds of ``C f(x) - b``; the best
    ``alpha``/``beta`` (N, U); ``branch`` (N,) the flat unit to split next (-1: none is
    free); ``x`` (N, n) primal candidates; ``coef`` (N, K, n) the input coefficients."""

    lower: Tensor
    alpha: Tensor
    beta: Tensor
    branch: Tensor
    x: Tensor


def split_relaxations(root: GraphRoot, st: GraphState, split: Tensor,
                      alpha: Tensor) -> dict[str, object]:
    """The relaxations of the split nodes for every domain (in ``st``'s dtype)."""
    out: dict[str, object] = {}
    N = split.shape[0]
    for i, (n, z) in enumerate(zip(root.nodes, root.inputs, strict=True)):
        idx = root.index[i]
        shape = st.gm.shape[z]
        lo = st.lo[z].reshape(1, -1).expand(N, -1)
        hi = st.hi[z].reshape(1, -1).expand(N, -1)
        p = st.params[n]
        assert p is not None
        p = p.reshape(1, 1, -1).expand(1, N, -1)
        if len(idx):
            s = root.block(split, i)
            lo, hi, p = lo.clone(), hi.clone(), p.clone()
            lo[:, idx] = torch.where(s > 0, torch.zeros_like(lo[:, idx]), lo[:, idx])
            hi[:, idx] = torch.where(s < 0, torch.zeros_like(hi[:, idx]), hi[:, idx])
            p[0, :, idx] = root.block(alpha, i).to(p.dtype)
        full = (N, 1) + shape
        out[n] = st.rules[n].relax(lo.reshape(full), hi.reshape(full),  # type: ignore[attr-defined]
                                   p.reshape((1,) + full), st.slack)
    return out


def _betas(root: GraphRoot, st: GraphState, split: Tensor, beta: Tensor,
           K: int) -> dict[str, Tensor]:
    """The Lagrangian coefficients ``beta * s`` on every split node's input (N, K, *s)."""
    out: dict[str, Tensor] = {}
    N = split.shape[0]
    for i, z in enumerate(root.inputs):
        idx = root.index[i]
        if not len(idx):
            continue
        sb = -root.block(split, i).to(beta.dtype) * root.block(beta, i)
        full = torch.zeros((N, st.gm.size(z)), dtype=beta.dtype, device=beta.device)
        full = full.index_add(1, idx, sb.to(full.dtype))
        out[z] = full.reshape((N, 1) + st.gm.shape[z]).expand((N, K) + st.gm.shape[z])
    return out


def objective(root: GraphRoot, st: GraphState, split: Tensor, alpha: Tensor, beta: Tensor,
              C: Tensor, b: Tensor,
              taps: dict[str, Tensor | None] | None = None) -> tuple[Tensor, Tensor]:
    """Sound lower bounds (N, K) of ``C f(x) - b`` in ``st``'s dtype, and the input
    coefficients (N, K, n)."""
    gm = st.gm
    N, K = C.shape[:2]
    A = C.to(st.options.dtype).reshape((N, K) + gm.shape[gm.output_name])
    relax = split_relaxations(root, st, split, alpha)
    add = _betas(root, st, split, beta.to(st.options.dtype), K)
    coef, const, mag = backward(st, gm.output_name, A, relax, add, taps)
    b = b.to(st.options.dtype)
    bound = concretize(st, coef, const - b, mag + b.abs())
    return bound, coef


def optimise(root: GraphRoot, split: Tensor, alpha: Tensor, beta: Tensor, C: Tensor,
             b: Tensor, options: GraphSplitOptions,
             stop: Callable[[], bool] | None) -> tuple[Tensor, Tensor]:
    """Projected Adam ascent on the best row's float32 surrogate bound; the best
    parameters (N, U) per domain."""
    alpha = alpha.detach().to(LOW).clamp(0.0, 1.0)
    beta = torch.where(split != 0, beta.detach().to(LOW).clamp(min=0.0), 0.0)
    if options.iterations == 0 or root.size == 0:
        return alpha, beta
    best_a, best_b = alpha.clone(), beta.clone()
    best = torch.full((split.shape[0],), -torch.inf, dtype=LOW)
    act = torch.arange(split.shape[0])
    alpha.requires_grad_(True)
    beta.requires_grad_(True)
    opt = Adam([alpha, beta], lr=[options.lr_alpha, options.lr_beta])
    C, b = C.to(LOW), b.to(LOW)
    for it in range(options.iterations + 1):
        val = objective(root, root.low, split, alpha, beta, C, b)[0].max(dim=1).values
        with torch.no_grad():
            better = val > best[act]
            rows = act[better]
            best[rows] = val[better]
            best_a[rows] = alpha[better]
            best_b[rows] = beta[better]
            done = best[act] > 0
        if it == options.iterations or bool(done.all()) or (stop is not None and stop()):
            break
        opt.ascend(val.nan_to_num(nan=0.0, neginf=-1e30).sum())
        with torch.no_grad():
            alpha.clamp_(0.0, 1.0)
            beta.clamp_(min=0.0)
            beta[split == 0] = 0.0
        n_done = int(done.sum())
        if n_done and 8 * n_done >= len(act):
            keep = torch.nonzero(~done).reshape(-1)
            act, split, C, b = act[keep], split[keep], C[keep], b[keep]
            alpha, beta = opt.keep_rows(keep)
    return best_a, best_b


def bound_domains(root: GraphRoot, split: Tensor, alpha: Tensor, beta: Tensor, C: Tensor,
                  b: Tensor, options: GraphSplitOptions,
                  stop: Callable[[], bool] | None = None) -> Bounded:
    """Bound every domain (``C`` (N, K, m), ``b`` (N, K)); see the module docstring."""
    alpha, beta = optimise(root, split, alpha, beta, C, b, options, stop)
    taps: dict[str, Tensor | None] = {n: None for n in root.nodes}
    with torch.no_grad():
        lower, coef = objective(root, root.state, split, alpha, beta, C, b, taps)
        lower = lower.nan_to_num(nan=-torch.inf, posinf=-torch.inf)
        best = lower.argmax(dim=1)
        pick = torch.arange(len(best))
        x_lo = root.state.lo[root.gm.input_name].reshape(1, -1)
        x_hi = root.state.hi[root.gm.input_name].reshape(1, -1)
        x = torch.where(coef[pick, best] >= 0, x_lo, x_hi)
        branch = _branch(root, split, taps, pick, best, options)
    return Bounded(lower, alpha, beta, branch, x)


def _branch(root: GraphRoot, split: Tensor, taps: dict[str, Tensor | None], pick: Tensor,
            best: Tensor, options: GraphSplitOptions) -> Tensor:
    """The free unit with the best score per domain (-1 when none is free)."""
    N = split.shape[0]
    if root.size == 0:
        return torch.full((N,), -1, dtype=torch.long)
    lams = []
    for n, idx in zip(root.nodes, root.index, strict=True):
        a = taps[n]
        if a is None:
            lams.append(torch.zeros((N, len(idx)), dtype=torch.float64))
        else:
            lams.append(a[pick, best].reshape(N, -1)[:, idx].to(torch.float64))
    lam = torch.cat(lams, dim=1)
    lo, hi = root.unit_bounds()
    free = split == 0
    score = branch_scores(options.branching, lam, lo.expand(N, -1), hi.expand(N, -1), root.bias)
    pos, ok = candidates([score], free, 1)
    return torch.where(ok[:, 0], pos[:, 0], -1)
