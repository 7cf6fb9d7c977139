"""CROWN / DeepPoly linear-relaxation bounds on a chain, batched over input boxes.

Every activation is enclosed between two lines valid on its pre-activation interval (see
:mod:`verinet.bounds.linear`); a linear objective ``C z`` is substituted backwards through
the chain (positive coefficients take the lower line, negative ones the upper line) down
to a linear function ``Lambda x + const`` of the input, minimised over the box as
``Lambda mid - |Lambda| rad + const``.  Upper bounds are lower bounds of ``-C z``.

Intermediate (pre-activation) bounds are computed layer by layer: interval bounds,
intersected with forward linear bounds (inputs up to ``FORWARD_MAX_INPUTS``) and with the
caller's ``prior``; then (``intermediate="crown"``) the rows still needing it are
back-substituted through the relaxations of the earlier layers.  For ReLU layers those are
the neurons still unstable, per box (stable neurons are relaxed exactly anyway); for
sigmoid/tanh layers all neurons.  Everything is batched over boxes; boxes are grouped by
their number of such rows to keep the coefficient tensors small.

Floating-point tolerance: everything is float64.  Alongside each bound we accumulate the
magnitude ``M`` of every term that entered it (``|Lambda| (|W| max|h| + |b|)`` for every
substituted layer, ``|Lambda| (|c| + a max|z|)`` for every relaxation, which includes
``|Lambda_x| max(|lo|, |hi|)`` at the input) and widen the bound outward by
``fp_slack(M) = 1e-10 M + 1e-12``.  That dominates the rounding of float64 sums of up to
``10^5`` terms, so the bounds hold for the exact real-valued network.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from verinet.bounds.interval import LayerBounds, interval_bounds
from verinet.bounds.linear import (
    DT,
    Forward,
    Relaxation,
    TorchChain,
    act_apply,
    affine_ibp,
    concretize,
    relax_take,
    relaxation,
    slack,
)
from verinet.ir.chain import Chain
from verinet.types import Box, InputError

log = logging.getLogger(__name__)

CHUNK_ELEMS = 1 << 21  # max elements of one batched coefficient tensor (boxes*rows*width)
MIN_GROUP = 64  # boxes per back-substitution group before padding waste is considered
FORWARD_MAX_INPUTS = 64  # forward linear bounds pre-filter stable neurons up to this many inputs

ArrayLike = np.ndarray | Tensor
Prior = Sequence[tuple[ArrayLike, ArrayLike] | None]


@dataclass(frozen=True)
class CrownResult:
    """Bounds of ``C @ f(x)`` for every box; arrays are float64 numpy.

    ``lower``/``upper``: (B, k) sound bounds (intersected with interval bounds).
    ``lower_coef``/``lower_offset``: (B, k, n)/(B, k) with
    ``C f(x) >= lower_coef @ x + lower_offset`` for all ``x`` in the box (the float-rounding
    slack is already in the offset); minimising it over the box gives at most ``lower``.
    ``upper_coef``/``upper_offset`` likewise with ``<=``.
    ``pre_lower``/``pre_upper``: per activation layer (B, units) pre-activation bounds,
    only when requested (else empty tuples).
    """

    lower: np.ndarray
    upper: np.ndarray
    lower_coef: np.ndarray
    lower_offset: np.ndarray
    upper_coef: np.ndarray
    upper_offset: np.ndarray
    pre_lower: tuple[np.ndarray, ...] = ()
    pre_upper: tuple[np.ndarray, ...] = ()

    def primal_vertex(self, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
        """(B, k, n) box vertex minimising ``lower_coef @ x`` (a primal candidate per row)."""
        lo = np.asarray(lower, dtype=np.float64).reshape(-1, self.lower_coef.shape[-1])
        hi = np.asarray(upper, dtype=np.float64).reshape(lo.shape)
        return np.where(self.lower_coef >= 0, lo[:, None, :], hi[:, None, :])


# ----------------------------------------------------------------------------- helpers


def as_tensor(x: ArrayLike) -> Tensor:
    return x.to(DT) if isinstance(x, Tensor) else torch.tensor(np.asarray(x, dtype=np.float64))


def as_batch(x: ArrayLike, name: str) -> Tensor:
    t = as_tensor(x)
    if t.ndim == 1:
        t = t.unsqueeze(0)
    if t.ndim != 2:
        raise InputError(f"{name} must have shape (B, n) or (n,), got {tuple(t.shape)}")
    return t


# ----------------------------------------------------------------------------- back-substitution


def backsub(
    net: TorchChain,
    j: int,
    spec: Tensor,
    relax: Sequence[Relaxation],
    vmag: Sequence[Tensor],
) -> tuple[Tensor, Tensor, Tensor]:
    """Lower bound of ``spec @ z_j`` as a linear function of the input.

    ``spec`` is (k, m_j) or (B, k, m_j); ``relax[i]`` and ``vmag[i]`` (B, n_i) are the
    relaxation of activation ``i`` and the term magnitude of affine layer ``i``.  Returns
    ``(coef (B, k, n), const (B, k), mag (B, k))``: ``spec z_j(x) >= coef x + const`` up to
    rounding bounded by ``fp_slack(mag)``.
    """
    const = spec @ net.b[j]
    mag = (spec.abs() @ vmag[j].unsqueeze(-1)).squeeze(-1)
    return backsub_from(net, j, spec @ net.W[j], const, mag, relax, vmag)


def backsub_from(
    net: TorchChain,
    j: int,
    lam: Tensor,
    const: Tensor,
    mag: Tensor,
    relax: Sequence[Relaxation],
    vmag: Sequence[Tensor],
) -> tuple[Tensor, Tensor, Tensor]:
    """Continue :func:`backsub` from ``lam @ h_{j-1} + const`` (``lam`` (k|B, k, n_{j-1})).

    Per relaxation the magnitude grows by ``|lam| X`` with ``X = 2 (|c_lo| + |c_up| +
    max(a_lo, a_up) v)``, which bounds every term (and every cancelling partial sum) formed
    in that step and in the following product with ``W``.
    """
    for i in range(j - 1, -1, -1):
        r, v, b = relax[i], vmag[i], net.b[i]
        pos = lam.clamp(min=0.0)
        new = lam * r.a_up.unsqueeze(1)
        new.addcmul_(pos, (r.a_lo - r.a_up).unsqueeze(1))  # pos * a_lo + neg * a_up
        n_c = r.c_up + r.a_up * b
        X = 2.0 * (r.c_lo.abs() + r.c_up.abs() + torch.maximum(r.a_lo, r.a_up) * v)
        A = torch.stack([n_c, -X], dim=-1)
        P = torch.stack([r.c_lo + r.a_lo * b - n_c, 2.0 * X], dim=-1)
        t = lam @ A + pos @ P  # [const, |lam| X]
        const = const + t[..., 0]
        mag = mag + t[..., 1]
        lam = new @ net.W[i]
    batch = vmag[0].shape[0]
    if lam.ndim == 2:
        lam = lam.expand(batch, *lam.shape)
    return lam, const.expand(batch, lam.shape[1]), mag.expand(batch, lam.shape[1])


# ----------------------------------------------------------------------------- layer by layer


@dataclass(frozen=True)
class Prepared:
    """Everything the final back-substitution needs for one batch of boxes."""

    net: TorchChain
    lo: Tensor
    hi: Tensor
    pre: tuple[tuple[Tensor, Tensor], ...]  # per activation, (B, units) each
    relax: tuple[Relaxation, ...]
    vmag: tuple[Tensor, ...]  # per affine layer, (B, units)


def prepare(
    net: TorchChain,
    lo: Tensor,
    hi: Tensor,
    intermediate: str = "crown",
    prior: Sequence[tuple[Tensor, Tensor] | None] | None = None,
    all_rows: bool = False,
) -> Prepared:
    """Pre-activation bounds and relaxations of every activation layer.

    Each layer's bounds are the intersection of interval bounds, forward linear bounds
    (when ``intermediate == "crown"`` and the input is small), the ``prior`` and, for the
    rows still needing it, back-substituted CROWN bounds.
    """
    pre: list[tuple[Tensor, Tensor]] = []
    relax: list[Relaxation] = []
    vmag: list[Tensor] = []
    h_lo, h_hi = lo, hi
    use_fwd = intermediate == "crown" and lo.shape[1] <= FORWARD_MAX_INPUTS
    fwd: Forward | None = None
    for j, kind in enumerate(net.kinds):
        lb, ub, v = affine_ibp(net, j, h_lo, h_hi)
        vmag.append(v)
        if use_fwd:
            fwd = Forward.start(net, v) if fwd is None else fwd.step(net, j, relax[-1])
            if j > 0:
                f_lo, f_hi = fwd.concretize(lo, hi)
                lb, ub = torch.maximum(lb, f_lo), torch.minimum(ub, f_hi)
        if prior is not None and prior[j] is not None:
            p_lo, p_hi = prior[j]  # type: ignore[misc]
            lb, ub = torch.maximum(lb, p_lo), torch.minimum(ub, p_hi)
        if intermediate == "crown" and j > 0:
            lb, ub = _refine(net, j, (lb, ub), relax, vmag, (lo, hi), all_rows)
        ub = torch.maximum(ub, lb)  # sound enclosures cannot be disjoint beyond rounding
        pre.append((lb, ub))
        relax.append(relaxation(kind, lb, ub))
        h_lo, h_hi = act_apply(kind, lb), act_apply(kind, ub)
    vmag.append(affine_ibp(net, len(net.kinds), h_lo, h_hi)[2])
    return Prepared(net, lo, hi, tuple(pre), tuple(relax), tuple(vmag))


def _refine(
    net: TorchChain,
    j: int,
    bounds: tuple[Tensor, Tensor],
    relax: Sequence[Relaxation],
    vmag: Sequence[Tensor],
    box: tuple[Tensor, Tensor],
    all_rows: bool,
) -> tuple[Tensor, Tensor]:
    """Tighten the bounds of affine layer ``j`` by back-substitution.

    Boxes are sorted by their number of rows to refine and grouped so that every group's
    coefficient tensor stays under ``CHUNK_ELEMS``; each box refines only its own rows
    (padded up to the group's largest count with filler rows whose results are dropped).
    """
    lb, ub = bounds
    if net.kinds[j] == "relu" and not all_rows:
        mask = (lb < 0) & (ub > 0)
    else:
        mask = torch.ones_like(lb, dtype=torch.bool)
    counts = mask.sum(dim=1)
    order = torch.argsort(counts, descending=True, stable=True)
    sorted_counts = counts[order].tolist()
    width = max(int(w.shape[1]) for w in net.W[: j + 1])
    lb, ub = lb.clone(), ub.clone()
    start = 0
    while start < len(sorted_counts) and sorted_counts[start] > 0:
        r = sorted_counts[start]
        end = _group_end(sorted_counts, start, max(1, CHUNK_ELEMS // (2 * r * width)))
        bidx = order[start:end]
        start = end
        rows = torch.argsort(mask[bidx].to(torch.uint8), dim=1, descending=True, stable=True)
        rows = rows[:, :r]  # (G, r): each box's rows first, then filler rows
        lo_b, hi_b = _rows_bounds(net, j, bidx, rows, relax, vmag, box)
        sel = (bidx.unsqueeze(1), rows)
        own = mask[sel]  # filler rows are dropped so a box's bounds never depend on others
        lb[sel] = torch.where(own, torch.maximum(lb[sel], lo_b), lb[sel])
        ub[sel] = torch.where(own, torch.minimum(ub[sel], hi_b), ub[sel])
    return lb, ub


def _group_end(counts: list[int], start: int, size: int) -> int:
    """End of the group starting at ``start`` (counts sorted descending): at most ``size``
    boxes, at least ``MIN_GROUP``, otherwise only boxes with more than 3/4 of the rows."""
    r = counts[start]
    end = min(len(counts), start + size)
    cut = start + MIN_GROUP
    while cut < end and 4 * counts[cut] > 3 * r:
        cut += 1
    return min(end, cut)


def _rows_bounds(
    net: TorchChain,
    j: int,
    bidx: Tensor,
    rows: Tensor,
    relax: Sequence[Relaxation],
    vmag: Sequence[Tensor],
    box: tuple[Tensor, Tensor],
) -> tuple[Tensor, Tensor]:
    """Back-substituted lower and upper bounds of units ``rows`` (G, r) of affine layer
    ``j`` for boxes ``bidx`` (G,)."""
    r = rows.shape[1]
    W = net.W[j][rows]  # (G, r, n_{j-1})
    lam = torch.cat([W, -W], dim=1)
    bias = net.b[j][rows]
    const = torch.cat([bias, -bias], dim=1)
    m = torch.gather(vmag[j][bidx], 1, rows)
    mag = torch.cat([m, m], dim=1)
    sub_relax = [relax_take(x, bidx) for x in relax[:j]]
    sub_vmag = [v[bidx] for v in vmag[:j]]
    coef, const, mag = backsub_from(net, j, lam, const, mag, sub_relax, sub_vmag)
    b = concretize(coef, const, mag, box[0][bidx], box[1][bidx])
    return b[:, :r], -b[:, r:]


def spec_ibp(prep: Prepared, C: Tensor) -> tuple[Tensor, Tensor]:
    """Interval bounds of ``C @ f(x)`` from the last activation's bounds (B, k)."""
    net = prep.net
    L = len(net.W) - 1
    if prep.pre:
        h_lo, h_hi = (act_apply(net.kinds[-1], t) for t in prep.pre[-1])
    else:
        h_lo, h_hi = prep.lo, prep.hi
    lam = C @ net.W[L]
    if lam.ndim == 2:
        lam = lam.expand(h_lo.shape[0], *lam.shape)
    const = C @ net.b[L]
    hmax = torch.maximum(h_lo.abs(), h_hi.abs())
    mag = (C.abs() @ prep.vmag[L].unsqueeze(-1)).squeeze(-1)
    mag = mag + (lam.abs() @ hmax.unsqueeze(-1)).squeeze(-1)
    lower = concretize(lam, const, mag, h_lo, h_hi)
    upper = -concretize(-lam, -const, mag, h_lo, h_hi)
    return lower, upper


# ----------------------------------------------------------------------------- public API


@dataclass(frozen=True)
class ChunkBounds:
    """Bounds of ``C f(x)`` for one chunk of boxes, as tensors."""

    lower: Tensor
    upper: Tensor
    lower_coef: Tensor
    lower_offset: Tensor
    upper_coef: Tensor
    upper_offset: Tensor
    pre: tuple[tuple[Tensor, Tensor], ...]


def final_bounds(prep: Prepared, C: Tensor) -> ChunkBounds:
    """CROWN bounds of ``C f(x)`` (lower and upper in one back-substitution)."""
    k = C.shape[-2]
    spec = torch.cat([C, -C], dim=-2)
    coef, const, mag = backsub(prep.net, len(prep.net.W) - 1, spec, prep.relax, prep.vmag)
    bound = concretize(coef, const, mag, prep.lo, prep.hi)
    offset = const - slack(mag)
    ibp_lo, ibp_hi = spec_ibp(prep, C)
    lower = torch.maximum(bound[:, :k], ibp_lo).nan_to_num(nan=-torch.inf)  # overflow
    upper = torch.minimum(-bound[:, k:], ibp_hi).nan_to_num(nan=torch.inf)
    return ChunkBounds(
        lower=lower,
        upper=upper,
        lower_coef=coef[:, :k],
        lower_offset=offset[:, :k],
        upper_coef=-coef[:, k:],
        upper_offset=-offset[:, k:],
        pre=prep.pre,
    )


@dataclass(frozen=True)
class Inputs:
    """Validated, batched arguments."""

    net: TorchChain
    lo: Tensor
    hi: Tensor
    C: Tensor
    prior: tuple[tuple[Tensor, Tensor] | None, ...] | None

    def chunks(self, budget: int = CHUNK_ELEMS) -> list[slice]:
        """Box slices keeping the final coefficient tensor under ``budget`` elements
        (intermediate layers are grouped separately, see ``_refine``)."""
        width = max(w.shape[1] for w in self.net.W)
        size = max(1, budget // (2 * self.C.shape[-2] * width))
        B = self.lo.shape[0]
        return [slice(s, min(s + size, B)) for s in range(0, B, size)]

    def part(self, sl: slice) -> Inputs:
        C = self.C[sl] if self.C.ndim == 3 else self.C
        prior = None
        if self.prior is not None:
            prior = tuple(None if p is None else (p[0][sl], p[1][sl]) for p in self.prior)
        return Inputs(self.net, self.lo[sl], self.hi[sl], C, prior)


def check_inputs(
    chain: Chain, lower: ArrayLike, upper: ArrayLike, C: ArrayLike | None, prior: Prior | None
) -> Inputs:
    """Validate shapes and values; raise ``InputError`` on misuse."""
    lo, hi = as_batch(lower, "lower"), as_batch(upper, "upper")
    if lo.shape != hi.shape or lo.shape[1] != chain.n_inputs:
        raise InputError(
            f"boxes {tuple(lo.shape)}/{tuple(hi.shape)} do not match {chain.n_inputs} inputs"
        )
    if not (torch.isfinite(lo).all() and torch.isfinite(hi).all()):
        raise InputError("box bounds must be finite")
    if bool((lo > hi).any()):
        raise InputError("empty box: lower > upper")
    m = chain.n_outputs
    Ct = torch.eye(m, dtype=DT) if C is None else as_tensor(C)
    if Ct.ndim not in (2, 3) or Ct.shape[-1] != m or (Ct.ndim == 3 and Ct.shape[0] != lo.shape[0]):
        raise InputError(f"C must be (k, {m}) or ({lo.shape[0]}, k, {m}), got {tuple(Ct.shape)}")
    pri = None
    if prior is not None:
        if len(prior) != len(chain.activations):
            raise InputError(f"prior needs one entry per activation layer, got {len(prior)}")
        pri = tuple(
            None
            if p is None
            else (
                as_batch(p[0], "prior").expand_as(_units(lo, a.size)),
                as_batch(p[1], "prior").expand_as(_units(lo, a.size)),
            )
            for p, a in zip(prior, chain.activations, strict=True)
        )
    return Inputs(TorchChain.of(chain), lo, hi, Ct, pri)


def _units(lo: Tensor, n: int) -> Tensor:
    return torch.empty((lo.shape[0], n), dtype=DT)


def assemble(parts: Sequence[ChunkBounds], return_intermediate: bool) -> CrownResult:
    """Concatenate chunk results into a numpy ``CrownResult``."""

    def cat(get: object) -> np.ndarray:
        return torch.cat([get(p) for p in parts]).detach().numpy().copy()  # type: ignore[operator]

    pre_lo: tuple[np.ndarray, ...] = ()
    pre_hi: tuple[np.ndarray, ...] = ()
    if return_intermediate:
        n_act = len(parts[0].pre)
        pre_lo = tuple(cat(lambda p, i=i: p.pre[i][0]) for i in range(n_act))
        pre_hi = tuple(cat(lambda p, i=i: p.pre[i][1]) for i in range(n_act))
    return CrownResult(
        lower=cat(lambda p: p.lower),
        upper=cat(lambda p: p.upper),
        lower_coef=cat(lambda p: p.lower_coef),
        lower_offset=cat(lambda p: p.lower_offset),
        upper_coef=cat(lambda p: p.upper_coef),
        upper_offset=cat(lambda p: p.upper_offset),
        pre_lower=pre_lo,
        pre_upper=pre_hi,
    )


def crown_bounds(
    chain: Chain,
    lower: ArrayLike,
    upper: ArrayLike,
    C: ArrayLike | None = None,
    intermediate: str = "crown",
    prior: Prior | None = None,
    return_intermediate: bool = False,
) -> CrownResult:
    """Sound bounds of ``C @ f(x)`` over each box ``lower[i] <= x <= upper[i]``.

    ``lower``/``upper``: (B, n) or (n,) (one box gives B = 1).  ``C``: (k, m) shared rows,
    (B, k, m) per box, or None for the identity.  ``intermediate``: "crown" or "interval"
    for the pre-activation bounds.  ``prior``: one ``(lo, hi)`` (B, units) pair or None per
    activation layer, intersected with the computed pre-activation bounds (they must be
    sound for the boxes).
    """
    if intermediate not in ("crown", "interval"):
        raise InputError(f"intermediate must be 'crown' or 'interval', got {intermediate!r}")
    inp = check_inputs(chain, lower, upper, C, prior)
    parts = []
    with torch.no_grad():
        for sl in inp.chunks():
            sub = inp.part(sl)
            prep = prepare(sub.net, sub.lo, sub.hi, intermediate, sub.prior)
            parts.append(final_bounds(prep, sub.C))
    return assemble(parts, return_intermediate)


def crown_layer_bounds(chain: Chain, box: Box) -> LayerBounds:
    """CROWN bounds of every affine layer for one box, intersected with interval bounds."""
    inp = check_inputs(chain, box.lower, box.upper, None, None)
    with torch.no_grad():
        prep = prepare(inp.net, inp.lo, inp.hi, "crown", None, all_rows=True)
        out = final_bounds(prep, inp.C)
    lows = [p[0][0].numpy() for p in prep.pre] + [out.lower[0].numpy()]
    highs = [p[1][0].numpy() for p in prep.pre] + [out.upper[0].numpy()]
    ibp = interval_bounds(chain, box)
    lows = [np.maximum(a, b) for a, b in zip(lows, ibp.lower, strict=True)]
    highs = [
        np.maximum(np.minimum(a, b), lo) for a, b, lo in zip(highs, ibp.upper, lows, strict=True)
    ]
    return LayerBounds(tuple(lows), tuple(highs), "crown")
