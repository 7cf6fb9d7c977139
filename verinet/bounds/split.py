"""Sound bounds of ReLU-chain sub-domains defined by neuron splits (beta-CROWN style).

A *split* fixes the phase of some ReLUs that are unstable on the box: active
(``z >= 0``) or inactive (``z <= 0``).  The sub-domain is the set of inputs in the box
that satisfy every split.  For a batch of sub-domains of one box (the :class:`SplitRoot`,
built by :func:`verinet.bounds.split_root.make_root`) this module computes:

1. **Intermediate bounds.**  Each domain carries sound bounds of the root-unstable units
   (its parent's); they are clamped by the splits (active: ``l := max(l, 0)``; inactive:
   ``u := min(u, 0)``), which is sound because every input of the sub-domain satisfies
   its splits.  With ``recompute`` the units of the layers after the newest split that
   are unstable or split are then re-bounded by CROWN back-substitution through the
   clamped relaxations of the layers before them, layer by layer, and intersected.  A
   sub-domain whose re-bounded and clamped bounds are disjoint contains no input
   (``infeasible``): both enclose ``z(x)`` for every ``x`` of the sub-domain.
2. **The objective bound** of ``C f(x)`` by one back-substitution in which every split
   unit ``z_i`` adds the Lagrangian term ``beta_i s_i z_i`` (``s = -1`` active, ``+1``
   inactive, ``beta >= 0``; the term is ``<= 0`` on the sub-domain, so the result stays
   a lower bound) and unstable units use the lower slope ``alpha`` in ``[0, 1]``.  alpha
   and beta are optimised by projected Adam ascent on a float32 surrogate (``iterations``
   steps); the best parameters met are then bounded soundly in float64 (any alpha in
   [0, 1] and beta >= 0 give a sound bound).  beta = 0 is plain CROWN with clamped bounds.
3. **The branching decision** (:mod:`verinet.bounds.branching`; "fsb" ranks the top
   candidates of both scores by the objective with the candidate's relaxation made
   exact) and a **primal candidate** (the box vertex minimising the best row's linear
   lower bound).

Floating-point tolerance: as in :mod:`verinet.bounds.crown` (float64; every bound is
widened by ``fp_slack`` of the magnitude of the terms that entered it, with slopes
bounded by 1 so one magnitude serves every alpha; the Lagrangian terms add
``2 |beta| v``).  Bounds are only as sound as the ``lo``/``hi`` the caller passes in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import torch
from torch import Tensor

from verinet.bounds.branching import SCORES, branch_scores, candidates
from verinet.bounds.crown import backsub_from
from verinet.bounds.linear import (
    DT,
    Relaxation,
    TorchChain,
    affine_ibp,
    concretize,
    relax_take,
    relu_relaxation,
)
from verinet.optim import Adam
from verinet.types import InputError

CHUNK_ELEMS = 1 << 22  # max elements of one batched coefficient tensor
LOW = torch.float32  # dtype of the optimisation surrogate (bounds themselves are float64)
BRANCHING = (*SCORES, "fsb")


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
    net32: TorchChain  # float32 weights for the optimisation surrogate

    @property
    def size(self) -> int:
        return self.offsets[-1]

    def block(self, flat: Tensor, j: int) -> Tensor:
        """Layer ``j``'s part of a (B, size) per-domain vector."""
        return flat[:, self.offsets[j]: self.offsets[j + 1]]

    def layer_at(self, pos: Tensor) -> Tensor:
        """Activation layer of flat positions."""
        return torch.searchsorted(torch.tensor(self.offsets[1:]), pos, right=True)

    def flat_bounds(self) -> tuple[Tensor, Tensor]:
        """The root bounds of the root-unstable units, (size,) each."""
        lo = torch.cat([p[i] for p, i in zip(self.pre_lo, self.index, strict=True)])
        hi = torch.cat([p[i] for p, i in zip(self.pre_hi, self.index, strict=True)])
        return lo, hi


@dataclass(frozen=True)
class SplitOptions:
    iterations: int = 30      # Adam steps on alpha and beta per bounding
    lr_alpha: float = 0.1
    lr_beta: float = 0.5
    recompute: bool = True    # re-bound intermediate layers under the splits
    branching: str = "fsb"    # babsr | intercept | fsb (see verinet.bounds.branching)
    fsb_candidates: int = 3   # per score, for "fsb"

    def __post_init__(self) -> None:
        if self.branching not in BRANCHING:
            raise InputError(f"branching must be one of {BRANCHING}, got {self.branching!r}")
        if self.iterations < 0 or not (self.lr_alpha > 0 and self.lr_beta > 0):
            raise InputError("need iterations >= 0 and positive learning rates")
        if self.fsb_candidates < 1:
            raise InputError("fsb_candidates must be positive")


@dataclass(frozen=True)
class Domains:
    """A batch of B sub-domains of one root.  ``split`` (B, size) int8: +1 active, -1
    inactive, 0 free; ``alpha`` (B, size) initial lower slopes; ``beta`` (B, size) initial
    multipliers (only split units' are used); ``lo``/``hi`` (B, size) sound bounds of the
    root-unstable units on the domain (e.g. its parent's, split units clamped or not);
    ``since`` (B,): only activation layers after ``since`` need re-bounding (the layer of
    the newest split; -1 for all)."""

    split: Tensor
    alpha: Tensor
    beta: Tensor
    lo: Tensor
    hi: Tensor
    since: Tensor

    def part(self, sl: slice) -> Domains:
        return Domains(*(getattr(self, f.name)[sl] for f in fields(Domains)))


@dataclass(frozen=True)
class SplitBounds:
    """Per domain (B): ``lower`` (B, k) sound lower bounds of ``C f(x) - offset`` (``+inf``
    rows for domains shown empty); ``alpha``/``beta`` (B, size) the best parameters;
    ``lo``/``hi`` (B, size) the domain's bounds of the root-unstable units (split units
    clamped); ``unstable`` (B, size) free units still unstable; ``branch`` (B,) the flat
    position to split next (-1 when none is unstable); ``x`` (B, n) primal candidates."""

    lower: Tensor
    alpha: Tensor
    beta: Tensor
    lo: Tensor
    hi: Tensor
    unstable: Tensor
    branch: Tensor
    x: Tensor

    @staticmethod
    def concat(parts: list[SplitBounds]) -> SplitBounds:
        return SplitBounds(*(torch.cat([getattr(p, f.name) for p in parts])
                             for f in fields(SplitBounds)))


def bound_splits(
    root: SplitRoot, dom: Domains, C: Tensor, offset: Tensor,
    options: SplitOptions = SplitOptions(), stop: Callable[[], bool] | None = None,
) -> SplitBounds:
    """Bound ``C f(x) - offset`` (C (B, k, m), offset (B, k)) over every sub-domain.
    ``stop()`` returning True ends the optimisation early (the bounds stay sound)."""
    width = max(int(w.shape[1]) for w in root.net.W)
    rows = max([2 * len(i) for i in root.index] + [2 * C.shape[1]])
    size = max(1, CHUNK_ELEMS // (rows * width))
    parts = []
    for s in range(0, dom.split.shape[0], size):
        sl = slice(s, s + size)
        parts.append(_bound_chunk(root, dom.part(sl), C[sl], offset[sl], options, stop))
    return SplitBounds.concat(parts)


def _bound_chunk(
    root: SplitRoot, dom: Domains, C: Tensor, offset: Tensor, options: SplitOptions,
    stop: Callable[[], bool] | None,
) -> SplitBounds:
    split = dom.split
    with torch.no_grad():
        pre, vmag, infeasible = domain_bounds(root, dom, options.recompute)
        lines = relaxation_lines(root, pre, vmag)
    alpha, beta = optimise(root, lines, split, dom.alpha, dom.beta, C, offset, options, stop)
    with torch.no_grad():
        bound, lams, coef = objective(root, lines, split, alpha, beta, C, offset, True,
                                       vmag[-1])
        bound = bound.nan_to_num(nan=-torch.inf, posinf=-torch.inf)  # overflow proves nothing
        bound[infeasible] = torch.inf
        best = bound.argmax(dim=1)
        pick = torch.arange(len(best))
        x = torch.where(coef[pick, best] >= 0, root.lo.unsqueeze(0), root.hi.unsqueeze(0))
        lo = torch.cat([lb[:, i] for (lb, _), i in zip(pre, root.index, strict=True)], dim=1)
        hi = torch.cat([ub[:, i] for (_, ub), i in zip(pre, root.index, strict=True)], dim=1)
        unstable = (lo < 0) & (hi > 0) & (split == 0)
        lam = torch.cat([v[pick, best][:, i] for v, i in zip(lams, root.index, strict=True)],
                        dim=1)
        bias = torch.cat([root.net.b[j][i] for j, i in enumerate(root.index)])
        kinds = SCORES if options.branching == "fsb" else (options.branching,)
        scores = [branch_scores(kind, lam, lo, hi, bias) for kind in kinds]
        k = options.fsb_candidates if options.branching == "fsb" else 1
        pos, ok = candidates(scores, unstable, k)
        if pos.shape[1] > 1:
            est = _child_estimates(root, lines, split, alpha, beta, C, offset, pos)
            pos = pos.gather(1, torch.where(ok, est, -torch.inf).argmax(1, keepdim=True))
        first = pos[:, 0] if pos.shape[1] else torch.zeros(len(best), dtype=torch.long)
        branch = torch.where(unstable.any(dim=1), first, -1)
    return SplitBounds(bound, alpha, beta, lo, hi, unstable, branch, x)


def full_bounds(root: SplitRoot, lo: Tensor, hi: Tensor) -> tuple[list[Tensor], list[Tensor]]:
    """Per activation layer (B, units) bounds from root-unstable ones (B, size)."""
    lows, highs = [], []
    for j, idx in enumerate(root.index):
        lb = root.pre_lo[j].expand(lo.shape[0], -1).clone()
        ub = root.pre_hi[j].expand(lo.shape[0], -1).clone()
        lb[:, idx], ub[:, idx] = root.block(lo, j), root.block(hi, j)
        lows.append(lb)
        highs.append(ub)
    return lows, highs


# ----------------------------------------------------------------------------- intermediate


def domain_bounds(
    root: SplitRoot, dom: Domains, recompute: bool
) -> tuple[list[tuple[Tensor, Tensor]], list[Tensor], Tensor]:
    """Pre-activation bounds of every domain, the term magnitudes of every affine layer
    (float slack) and the emptiness flag (B,)."""
    net = root.net
    B = dom.split.shape[0]
    infeasible = torch.zeros(B, dtype=torch.bool)
    pre: list[tuple[Tensor, Tensor]] = []
    relax: list[Relaxation] = []
    vmag: list[Tensor] = []
    lows, highs = full_bounds(root, dom.lo, dom.hi)
    h_lo, h_hi = root.lo.expand(B, -1), root.hi.expand(B, -1)
    for j, idx in enumerate(root.index):
        vmag.append(affine_ibp(net, j, h_lo, h_hi)[2])
        lb, ub = lows[j], highs[j]
        s = root.block(dom.split, j)
        lb[:, idx] = torch.where(s > 0, lb[:, idx].clamp(min=0.0), lb[:, idx])
        ub[:, idx] = torch.where(s < 0, ub[:, idx].clamp(max=0.0), ub[:, idx])
        sub = torch.nonzero(dom.since < j).reshape(-1) if recompute and j > 0 else idx[:0]
        if len(idx) and len(sub):
            _rebound(root, j, sub, s[sub], (lb, ub), relax, vmag, infeasible)
        infeasible |= (lb > ub).any(dim=1)
        ub = torch.maximum(ub, lb)  # only empty domains can cross
        pre.append((lb, ub))
        relax.append(relu_relaxation(lb, ub))
        h_lo, h_hi = lb.clamp(min=0.0), ub.clamp(min=0.0)
    vmag.append(affine_ibp(net, len(root.index), h_lo, h_hi)[2])
    return pre, vmag, infeasible


def _rebound(
    root: SplitRoot, j: int, sub: Tensor, split: Tensor, bounds: tuple[Tensor, Tensor],
    relax: list[Relaxation], vmag: list[Tensor], infeasible: Tensor,
) -> None:
    """Back-substitute (in place) the units of layer ``j`` that are unstable or split in
    some domain of ``sub``; flag the domains whose new bounds are disjoint from the old."""
    lb, ub = bounds
    idx = root.index[j]
    old_lo, old_hi = lb[sub][:, idx], ub[sub][:, idx]
    need = (((old_lo < 0) & (old_hi > 0)) | (split != 0)).any(dim=0)
    rows = idx[need]
    if not len(rows):
        return
    c_lo, c_hi = _rows_bounds(root, j, rows, [relax_take(r, sub) for r in relax],
                             [v[sub] for v in vmag])
    old_lo, old_hi = old_lo[:, need], old_hi[:, need]
    infeasible[sub] |= ((c_lo > old_hi) | (c_hi < old_lo)).any(dim=1)
    sel = (sub.unsqueeze(1), rows.unsqueeze(0))
    lb[sel] = torch.maximum(old_lo, c_lo)
    ub[sel] = torch.minimum(old_hi, c_hi)


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


# ----------------------------------------------------------------------------- objective


@dataclass(frozen=True)
class Lines:
    """One activation layer's relaxation pieces that stay fixed while alpha and beta are
    optimised: the upper line, CROWN's lower slopes, which root-unstable units are still
    unstable (B, r) and the slack magnitude factor ``X`` (with slopes bounded by 1, so it
    holds for every alpha)."""

    a_up: Tensor
    c_up: Tensor
    a_lo: Tensor
    free: Tensor
    X: Tensor

    def take(self, rows: Tensor) -> Lines:
        """The pieces of domains ``rows`` only."""
        return Lines(*(getattr(self, f.name)[rows] for f in fields(Lines)))


def relaxation_lines(
    root: SplitRoot, pre: list[tuple[Tensor, Tensor]], vmag: list[Tensor]
) -> list[Lines]:
    """The fixed relaxation pieces of every activation layer of every domain."""
    out = []
    for (lb, ub), idx, v in zip(pre, root.index, vmag, strict=False):
        r = relu_relaxation(lb, ub)
        free = (lb[:, idx] < 0) & (ub[:, idx] > 0)
        out.append(Lines(r.a_up, r.c_up, r.a_lo, free, 2.0 * (r.c_up.abs() + v)))
    return out


def _low(lines: list[Lines]) -> list[Lines]:
    return [Lines(*(t.to(LOW) if t.is_floating_point() else t
                     for t in (ln.a_up, ln.c_up, ln.a_lo, ln.free, ln.X))) for ln in lines]


def optimise(
    root: SplitRoot, lines: list[Lines], split: Tensor, alpha: Tensor, beta: Tensor,
    C: Tensor, offset: Tensor, options: SplitOptions, stop: Callable[[], bool] | None,
) -> tuple[Tensor, Tensor]:
    """Projected Adam ascent on the best row's bound; returns the best parameters.  The
    objective is a float32 surrogate without the float slack: any parameters give sound
    bounds, which the caller computes afterwards in float64.

    Domains are independent (the ascent is on the sum of their bounds), so a domain whose
    surrogate bound is already positive leaves the optimisation: the batch is compacted
    once at least an eighth of it is done (on ReLU branch and bound over DeepPAC's FNN1
    about 40% of the children are proven by their parent's parameters before any step)."""
    alpha = alpha.detach().to(LOW).clamp(0.0, 1.0)
    beta = torch.where(split != 0, beta.detach().to(LOW).clamp(min=0.0), 0.0)
    if options.iterations == 0 or root.size == 0:
        return alpha.to(DT), beta.to(DT)
    lines = _low(lines)
    C, offset = C.to(LOW), offset.to(LOW)
    best_a, best_b = alpha.clone(), beta.clone()
    best = torch.full((split.shape[0],), -torch.inf, dtype=LOW)
    act = torch.arange(split.shape[0])  # the domains still optimised (rows of the work set)
    alpha.requires_grad_(True)
    beta.requires_grad_(True)
    opt = Adam([alpha, beta], lr=[options.lr_alpha, options.lr_beta])
    for it in range(options.iterations + 1):
        val = objective(root, lines, split, alpha, beta, C, offset, False)[0].max(dim=1).values
        with torch.no_grad():
            better = val > best[act]
            rows = act[better]
            best[rows] = val[better]
            best_a[rows] = alpha[better]
            best_b[rows] = beta[better]
            done = best[act] > 0
        if it == options.iterations or bool(done.all()) or (stop is not None and stop()):
            break
        opt.zero_grad()
        (-val.sum()).backward()  # domains are independent: one sum optimises each
        opt.step()
        with torch.no_grad():
            alpha.clamp_(0.0, 1.0)
            beta.clamp_(min=0.0)
            beta[split == 0] = 0.0
        n_done = int(done.sum())
        if n_done and 8 * n_done >= len(act):
            keep = torch.nonzero(~done).reshape(-1)
            act = act[keep]
            lines = [ln.take(keep) for ln in lines]
            split, C, offset = split[keep], C[keep], offset[keep]
            alpha, beta = opt.keep_rows(keep)
    return best_a.to(DT), best_b.to(DT)


def objective(
    root: SplitRoot, lines: list[Lines], split: Tensor, alpha: Tensor, beta: Tensor,
    C: Tensor, offset: Tensor, record: bool, out_mag: Tensor | None = None,
) -> tuple[Tensor, list[Tensor], Tensor]:
    """Lower bound (B, k) of ``C f(x) - offset``.  With ``record`` (float64 only): the sound
    bound (float slack included; ``out_mag`` is the output layer's term magnitude), the
    coefficients (B, k, units) of every activation layer's output and the input
    coefficients; without: the bound up to the slack, in C's dtype (for optimisation)."""
    net = root.net if C.dtype == DT else root.net32
    L = len(net.W) - 1
    lam = C @ net.W[L]
    const = C @ net.b[L] - offset
    mag = torch.zeros_like(const)
    if record:
        assert out_mag is not None and C.dtype == DT, "sound bounds need float64"
        mag = (C.abs() @ out_mag.unsqueeze(-1)).squeeze(-1) + offset.abs()
    lams: list[Tensor] = []
    for i in range(L - 1, -1, -1):
        ln, idx = lines[i], root.index[i]
        a_lo = ln.a_lo
        if len(idx):
            a_lo = a_lo.clone()
            a_lo[:, idx] = torch.where(ln.free, root.block(alpha, i), ln.a_lo[:, idx])
        if record:
            lams.insert(0, lam)
            mag = mag + (lam.abs() * ln.X.unsqueeze(1)).sum(-1)
        pos, neg = lam.clamp(min=0.0), lam.clamp(max=0.0)
        new = pos * a_lo.unsqueeze(1) + neg * ln.a_up.unsqueeze(1)
        const = const + (neg * ln.c_up.unsqueeze(1)).sum(-1)
        if len(idx):
            sb = -root.block(split, i).to(C.dtype) * root.block(beta, i)  # beta * s
            new = new.index_add(2, idx, sb.unsqueeze(1).expand(-1, new.shape[1], -1))
            if record:
                v = ln.X[:, idx] / 2.0  # >= the layer's term magnitude
                mag = mag + 2.0 * (sb.abs() * v).sum(-1, keepdim=True)
        const = const + new @ net.b[i]
        lam = new @ net.W[i]
    lo, hi = root.lo.to(C.dtype), root.hi.to(C.dtype)
    bound = concretize(lam, const, mag, lo.expand(lam.shape[0], -1), hi.expand(lam.shape[0], -1))
    return bound, lams, lam


# ----------------------------------------------------------------------------- branching


def _child_estimates(
    root: SplitRoot, lines: list[Lines], split: Tensor, alpha: Tensor, beta: Tensor,
    C: Tensor, offset: Tensor, pos: Tensor,
) -> Tensor:
    """(B, K) estimated bound of the worse child of splitting each candidate ``pos``
    (B, K): the objective with that unit's relaxation made exact, everything else fixed
    (intermediate bounds are not re-bounded; heuristic only, no float slack)."""
    B, K = pos.shape
    bi = torch.arange(B).repeat_interleave(2 * K)
    p = pos.repeat_interleave(2, dim=1).reshape(-1)
    phase = torch.tensor([1, -1], dtype=torch.int8).repeat(B * K)
    split_e = split[bi].clone()
    split_e[torch.arange(len(p)), p] = phase
    layer = root.layer_at(p)
    out = []
    for i, ln in enumerate(_low(lines)):
        a_lo, a_up, c_up, free = ln.a_lo[bi], ln.a_up[bi], ln.c_up[bi], ln.free[bi]
        rows = torch.nonzero(layer == i).reshape(-1)
        if len(rows):
            local = p[rows] - root.offsets[i]
            unit = root.index[i][local]
            val = (phase[rows] > 0).to(LOW)
            a_lo[rows, unit], a_up[rows, unit], c_up[rows, unit] = val, val, 0.0
            free[rows, local] = False
        out.append(Lines(a_up, c_up, a_lo, free, ln.X))
    val = objective(root, out, split_e, alpha[bi].to(LOW), beta[bi].to(LOW), C[bi].to(LOW),
                     offset[bi].to(LOW), False)[0]
    return val.max(dim=1).values.reshape(B, K, 2).min(dim=2).values
