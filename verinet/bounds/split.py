"""Sound bounds of ReLU-chain sub-domains defined by neuron splits (beta-CROWN style).

A *split* fixes the phase of some ReLUs that are unstable on the box: active
(``z >= 0``) or inactive (``z <= 0``).  The sub-domain is the set of inputs in the box
that satisfy every split.  For a batch of sub-domains of one box (the :class:`SplitRoot`)
this module computes:

1. **Intermediate bounds.**  Every pre-activation bound starts from the root's (sound on
   the whole box, hence on every sub-domain) and is clamped by the splits (active:
   ``l := max(l, 0)``; inactive: ``u := min(u, 0)``), which is sound because every input
   of the sub-domain satisfies its splits.  With ``recompute`` the root-unstable units of
   every layer are then re-bounded by CROWN back-substitution through the clamped
   relaxations of the layers before them, layer by layer, and intersected.  A sub-domain
   whose recomputed bounds are disjoint from its clamped ones contains no input
   (``infeasible``): both enclose ``z(x)`` for every ``x`` of the sub-domain.
2. **The objective bound** of ``C f(x)`` by one back-substitution in which every split
   unit ``z_i`` adds the Lagrangian term ``beta_i s_i z_i`` (``s = -1`` active, ``+1``
   inactive, ``beta >= 0``; the term is ``<= 0`` on the sub-domain, so the result stays
   a lower bound) and unstable units use the lower slope ``alpha`` in ``[0, 1]``.  alpha
   and beta are optimised by projected Adam ascent (``iterations`` steps); the best bound
   met is kept, and every one is sound.  beta = 0 is plain CROWN with clamped bounds.
3. **Branching scores** of the still-unstable free units (``babsr`` or ``intercept``,
   see :func:`branch_scores`) and a **primal candidate** (the box vertex minimising the
   linear lower bound of the best row).

Floating-point tolerance: as in :mod:`verinet.bounds.crown` (float64 throughout; every
bound is widened by ``fp_slack`` of the magnitude of the terms that entered it; the
Lagrangian terms add ``2 |beta| v`` to that magnitude).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from verinet.bounds.crown import backsub_from, crown_bounds
from verinet.bounds.linear import DT, Relaxation, TorchChain, affine_ibp, concretize, relu_relaxation
from verinet.ir.chain import Chain
from verinet.types import InputError

CHUNK_ELEMS = 1 << 22  # max elements of one batched coefficient tensor
BRANCHING = ("babsr", "intercept")


@dataclass(frozen=True)
class SplitRoot:
    """The box and its root pre-activation bounds; ``index[j]`` lists the units of
    activation layer ``j`` unstable at the root (the only ones a split may fix).  Per-domain
    vectors over those units are flat (length ``size``), layer ``j`` at ``offsets[j]``."""

    net: TorchChain
    lo: Tensor
    hi: Tensor
    pre_lo: tuple[Tensor, ...]
    pre_hi: tuple[Tensor, ...]
    index: tuple[Tensor, ...]
    offsets: tuple[int, ...]

    @property
    def size(self) -> int:
        return self.offsets[-1]

    def block(self, flat: Tensor, j: int) -> Tensor:
        """Layer ``j``'s part of a (B, size) per-domain vector."""
        return flat[:, self.offsets[j]: self.offsets[j + 1]]

    def layer_of(self, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(activation layer, unit) of flat positions."""
        layer = np.searchsorted(np.asarray(self.offsets), pos, side="right") - 1
        units = [self.index[j].numpy() for j in range(len(self.index))]
        unit = np.array([units[k][p - self.offsets[k]] for k, p in zip(layer, pos, strict=True)],
                        dtype=np.int64)
        return layer, unit


def make_root(chain: Chain, lower: np.ndarray, upper: np.ndarray) -> SplitRoot:
    """CROWN pre-activation bounds of ``chain`` over the box (ReLU chains only)."""
    if not chain.is_relu:
        raise InputError("ReLU splitting needs a ReLU chain")
    res = crown_bounds(chain, lower, upper, return_intermediate=True)
    pre_lo = tuple(torch.tensor(v[0], dtype=DT) for v in res.pre_lower)
    pre_hi = tuple(torch.tensor(v[0], dtype=DT) for v in res.pre_upper)
    index = tuple(torch.nonzero((lo < 0) & (hi > 0)).reshape(-1)
                  for lo, hi in zip(pre_lo, pre_hi, strict=True))
    offsets = tuple(int(v) for v in np.concatenate([[0], np.cumsum([len(i) for i in index])]))
    lo = torch.tensor(np.asarray(lower, dtype=np.float64).reshape(-1), dtype=DT)
    hi = torch.tensor(np.asarray(upper, dtype=np.float64).reshape(-1), dtype=DT)
    return SplitRoot(TorchChain.of(chain), lo, hi, pre_lo, pre_hi, index, offsets)


@dataclass(frozen=True)
class SplitOptions:
    iterations: int = 10      # Adam steps on alpha and beta per bounding
    lr_alpha: float = 0.1
    lr_beta: float = 0.05
    recompute: bool = True    # re-bound intermediate layers under the splits
    branching: str = "babsr"

    def __post_init__(self) -> None:
        if self.branching not in BRANCHING:
            raise InputError(f"branching must be one of {BRANCHING}, got {self.branching!r}")
        if self.iterations < 0 or not (self.lr_alpha > 0 and self.lr_beta > 0):
            raise InputError("need iterations >= 0 and positive learning rates")


@dataclass(frozen=True)
class SplitBounds:
    """Per domain (B): ``lower`` (B, k) sound lower bounds of ``C f(x) - offset`` (``+inf``
    rows for infeasible domains); ``alpha``/``beta`` (B, size) the best parameters;
    ``unstable`` (B, size) free units still unstable; ``score`` (B, size) branching scores
    (``-inf`` where not branchable); ``x`` (B, n) primal candidates; ``pre_lo``/``pre_hi``
    per activation layer (B, units) the domain's pre-activation bounds."""

    lower: Tensor
    alpha: Tensor
    beta: Tensor
    unstable: Tensor
    score: Tensor
    x: Tensor
    pre_lo: tuple[Tensor, ...]
    pre_hi: tuple[Tensor, ...]

    @staticmethod
    def concat(parts: list[SplitBounds]) -> SplitBounds:
        n_act = len(parts[0].pre_lo)
        return SplitBounds(
            *(torch.cat([getattr(p, f) for p in parts])
              for f in ("lower", "alpha", "beta", "unstable", "score", "x")),
            tuple(torch.cat([p.pre_lo[j] for p in parts]) for j in range(n_act)),
            tuple(torch.cat([p.pre_hi[j] for p in parts]) for j in range(n_act)),
        )


def bound_splits(
    root: SplitRoot, split: Tensor, alpha: Tensor, beta: Tensor, C: Tensor, offset: Tensor,
    options: SplitOptions = SplitOptions(),
) -> SplitBounds:
    """Bound ``C f(x) - offset`` (C (B, k, m), offset (B, k)) over every sub-domain.

    ``split`` (B, size) int8: +1 active, -1 inactive, 0 free; ``alpha`` (B, size) initial
    lower slopes; ``beta`` (B, size) initial multipliers (only split units' are used).
    """
    width = max(int(w.shape[1]) for w in root.net.W)
    rows = max([2 * len(i) for i in root.index] + [2 * C.shape[1]])
    size = max(1, CHUNK_ELEMS // (rows * width))
    parts = []
    for s in range(0, split.shape[0], size):
        sl = slice(s, s + size)
        parts.append(_bound_chunk(root, split[sl], alpha[sl], beta[sl], C[sl], offset[sl],
                                  options))
    return SplitBounds.concat(parts)


def _bound_chunk(
    root: SplitRoot, split: Tensor, alpha: Tensor, beta: Tensor, C: Tensor, offset: Tensor,
    options: SplitOptions,
) -> SplitBounds:
    with torch.no_grad():
        pre, infeasible = domain_bounds(root, split, options.recompute)
        vmag = _vmags(root, pre)
    alpha, beta = _optimise(root, pre, vmag, split, alpha, beta, C, offset, options)
    with torch.no_grad():
        bound, lams, coef = _objective(root, pre, vmag, split, alpha, beta, C, offset, True)
        bound[infeasible] = torch.inf
        best = bound.argmax(dim=1)
        pick = torch.arange(len(best))
        lo, hi = root.lo.unsqueeze(0), root.hi.unsqueeze(0)
        x = torch.where(coef[pick, best] >= 0, lo, hi)
        lam = [v[pick, best] for v in lams]
        unstable = torch.cat([(lb[:, i] < 0) & (ub[:, i] > 0) & (root.block(split, j) == 0)
                              for j, ((lb, ub), i) in enumerate(zip(pre, root.index,
                                                                    strict=True))], dim=1)
        score = branch_scores(root, pre, lam, options.branching)
        score = torch.where(unstable, score, -torch.inf)
    return SplitBounds(bound, alpha, beta, unstable, score, x,
                       tuple(p[0] for p in pre), tuple(p[1] for p in pre))


# ----------------------------------------------------------------------------- intermediate


def domain_bounds(
    root: SplitRoot, split: Tensor, recompute: bool
) -> tuple[list[tuple[Tensor, Tensor]], Tensor]:
    """Pre-activation bounds of every domain and its infeasibility flag (B,)."""
    B = split.shape[0]
    net = root.net
    infeasible = torch.zeros(B, dtype=torch.bool)
    pre: list[tuple[Tensor, Tensor]] = []
    relax: list[Relaxation] = []
    vmag: list[Tensor] = []
    h_lo, h_hi = root.lo.expand(B, -1), root.hi.expand(B, -1)
    for j, idx in enumerate(root.index):
        vmag.append(affine_ibp(net, j, h_lo, h_hi)[2])
        lb = root.pre_lo[j].expand(B, -1).clone()
        ub = root.pre_hi[j].expand(B, -1).clone()
        s = root.block(split, j)
        lb[:, idx] = torch.where(s > 0, lb[:, idx].clamp(min=0.0), lb[:, idx])
        ub[:, idx] = torch.where(s < 0, ub[:, idx].clamp(max=0.0), ub[:, idx])
        if recompute and j > 0 and len(idx):
            c_lo, c_hi = _rows_bounds(root, j, idx, relax, vmag)
            infeasible |= ((c_lo > ub[:, idx]) | (c_hi < lb[:, idx])).any(dim=1)
            lb[:, idx] = torch.maximum(lb[:, idx], c_lo)
            ub[:, idx] = torch.minimum(ub[:, idx], c_hi)
        infeasible |= (lb > ub).any(dim=1)
        ub = torch.maximum(ub, lb)  # only infeasible domains can cross
        pre.append((lb, ub))
        relax.append(relu_relaxation(lb, ub))
        h_lo, h_hi = lb.clamp(min=0.0), ub.clamp(min=0.0)
    return pre, infeasible


def _rows_bounds(
    root: SplitRoot, j: int, idx: Tensor, relax: list[Relaxation], vmag: list[Tensor]
) -> tuple[Tensor, Tensor]:
    """Back-substituted lower/upper bounds (B, r) of units ``idx`` of affine layer ``j``."""
    net = root.net
    W, b = net.W[j][idx], net.b[j][idx]
    lam = torch.cat([W, -W])
    B = vmag[0].shape[0]
    const = torch.cat([b, -b]).expand(B, -1)
    m = vmag[j][:, idx]
    mag = torch.cat([m, m], dim=1)
    coef, const, mag = backsub_from(net, j, lam, const, mag, relax, vmag)
    bound = concretize(coef, const, mag, root.lo.expand(B, -1), root.hi.expand(B, -1))
    r = len(idx)
    return bound[:, :r], -bound[:, r:]


def _vmags(root: SplitRoot, pre: list[tuple[Tensor, Tensor]]) -> list[Tensor]:
    """Term magnitudes of every affine layer (float slack), as in CROWN."""
    B = pre[0][0].shape[0]
    h_lo, h_hi = root.lo.expand(B, -1), root.hi.expand(B, -1)
    out = []
    for j in range(len(root.net.W)):
        out.append(affine_ibp(root.net, j, h_lo, h_hi)[2])
        if j < len(pre):
            h_lo, h_hi = pre[j][0].clamp(min=0.0), pre[j][1].clamp(min=0.0)
    return out


# ----------------------------------------------------------------------------- objective


def _optimise(
    root: SplitRoot, pre: list[tuple[Tensor, Tensor]], vmag: list[Tensor], split: Tensor,
    alpha: Tensor, beta: Tensor, C: Tensor, offset: Tensor, options: SplitOptions,
) -> tuple[Tensor, Tensor]:
    """Projected Adam ascent on the best row's bound; returns the best parameters."""
    alpha = alpha.detach().clone().clamp_(0.0, 1.0)
    beta = torch.where(split != 0, beta.detach().clamp(min=0.0), 0.0)
    if options.iterations == 0:
        return alpha, beta
    best_a, best_b = alpha.clone(), beta.clone()
    best = torch.full((split.shape[0],), -torch.inf, dtype=DT)
    alpha.requires_grad_(True)
    beta.requires_grad_(True)
    opt = torch.optim.Adam([{"params": [alpha], "lr": options.lr_alpha},
                            {"params": [beta], "lr": options.lr_beta}])
    for it in range(options.iterations + 1):
        bound = _objective(root, pre, vmag, split, alpha, beta, C, offset, False)[0]
        val = bound.max(dim=1).values
        with torch.no_grad():
            better = val > best
            best = torch.where(better, val, best)
            best_a[better] = alpha[better]
            best_b[better] = beta[better]
        if it == options.iterations:
            break
        opt.zero_grad()
        (-val.sum()).backward()  # domains are independent: one sum optimises each
        opt.step()
        with torch.no_grad():
            alpha.clamp_(0.0, 1.0)
            beta.clamp_(min=0.0)
            beta[split == 0] = 0.0
    return best_a, best_b


def _objective(
    root: SplitRoot, pre: list[tuple[Tensor, Tensor]], vmag: list[Tensor], split: Tensor,
    alpha: Tensor, beta: Tensor, C: Tensor, offset: Tensor, record: bool,
) -> tuple[Tensor, list[Tensor], Tensor]:
    """Lower bound (B, k) of ``C f(x) - offset``; with ``record`` also the coefficient
    (B, k, units) of every activation layer's output and the input coefficients."""
    net = root.net
    L = len(net.W) - 1
    lam = C @ net.W[L]
    const = C @ net.b[L] - offset
    mag = (C.abs() @ vmag[L].unsqueeze(-1)).squeeze(-1) + offset.abs()
    lams: list[Tensor] = []
    for i in range(L - 1, -1, -1):
        lb, ub = pre[i]
        idx = root.index[i]
        a_full = (ub > -lb).to(DT)
        if len(idx):
            a_full[:, idx] = root.block(alpha, i)
        r = relu_relaxation(lb, ub, a_full)
        if record:
            lams.insert(0, lam)
        pos, neg = lam.clamp(min=0.0), lam.clamp(max=0.0)
        new = pos * r.a_lo.unsqueeze(1) + neg * r.a_up.unsqueeze(1)
        const = const + (neg * r.c_up.unsqueeze(1)).sum(-1)
        X = 2.0 * (r.c_up.abs() + torch.maximum(r.a_lo, r.a_up) * vmag[i])
        mag = mag + (lam.abs() * X.unsqueeze(1)).sum(-1)
        if len(idx):
            sb = -root.block(split, i).to(DT) * root.block(beta, i)  # beta * s
            new = new.index_add(2, idx, sb.unsqueeze(1).expand(-1, new.shape[1], -1))
            mag = mag + 2.0 * (sb.abs() * vmag[i][:, idx]).sum(-1, keepdim=True)
        const = const + new @ net.b[i]
        lam = new @ net.W[i]
    bound = concretize(lam, const, mag, root.lo.expand(lam.shape[0], -1),
                       root.hi.expand(lam.shape[0], -1))
    return bound, lams, lam


# ----------------------------------------------------------------------------- branching


def branch_scores(
    root: SplitRoot, pre: list[tuple[Tensor, Tensor]], lam: list[Tensor], kind: str
) -> Tensor:
    """(B, size) score of every root-unstable unit (larger = split first).

    With ``lam`` the coefficient of the unit's ReLU output in the best row's
    back-substitution, ``s = u / (u - l)`` the upper slope, ``t = -s l`` its intercept and
    ``b`` the unit's bias:

    * ``intercept``: ``-min(lam, 0) t``, the loss the upper line's intercept costs the bound
      (what splitting the unit removes);
    * ``babsr`` (Bunel et al. 2020, as in ../shared/docs/algorithms.md 4.3):
      ``|max(lam b (s - 1), lam b s) + min(lam, 0) t|``, which adds an estimate of how the
      unit's bias enters the bound after the split.
    """
    out = []
    for j, idx in enumerate(root.index):
        lb, ub = pre[j][0][:, idx], pre[j][1][:, idx]
        den = torch.where(ub > lb, ub - lb, 1.0)
        s = (ub / den).clamp(0.0, 1.0)
        t = -s * lb.clamp(max=0.0)
        a = lam[j][:, idx]
        inter = a.clamp(max=0.0) * t
        if kind == "intercept":
            out.append(-inter)
            continue
        bias = root.net.b[j][idx]
        out.append((torch.maximum(a * bias * (s - 1.0), a * bias * s) + inter).abs())
    return torch.cat(out, dim=1)
