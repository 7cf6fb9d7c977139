"""alpha-CROWN: optimised lower-relaxation slopes of unstable ReLUs.

Every slope ``alpha`` in ``[0, 1]`` gives a sound lower line ``alpha z <= relu(z)``, so
every bound computed along the optimisation is sound (with the same float slack as
:mod:`verinet.bounds.crown`).  The slopes (one per box and neuron, shared by the objective
rows) start at CROWN's adaptive choice and follow projected Adam ascent on the sum of the
final lower bounds; the intermediate bounds stay those of CROWN.  The result is the
elementwise maximum of all bounds met, the CROWN bound included, so it is never looser.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import torch
from torch import Tensor

from verinet.bounds.crown import (
    CHUNK_ELEMS,
    ArrayLike,
    ChunkBounds,
    CrownResult,
    Prepared,
    Prior,
    assemble,
    backsub,
    check_inputs,
    final_bounds,
    prepare,
)
from verinet.bounds.linear import DT, concretize, relu_relaxation, slack
from verinet.ir.chain import Chain
from verinet.optim import Adam
from verinet.types import InputError

log = logging.getLogger(__name__)

OPTIMIZE = ("lower", "upper", "both")


def alpha_crown_bounds(
    chain: Chain,
    lower: ArrayLike,
    upper: ArrayLike,
    C: ArrayLike | None = None,
    iterations: int = 20,
    lr: float = 0.1,
    optimize: str = "lower",
    intermediate: str = "crown",
    prior: Prior | None = None,
    return_intermediate: bool = False,
) -> CrownResult:
    """Like :func:`verinet.bounds.crown.crown_bounds` with optimised ReLU lower slopes.

    ``optimize`` picks which ends of ``C f(x)`` are optimised ("lower", "upper" or
    "both"); the other end is CROWN's.  ``iterations`` Adam steps of size ``lr``.
    """
    if optimize not in OPTIMIZE:
        raise InputError(f"optimize must be one of {OPTIMIZE}, got {optimize!r}")
    if intermediate not in ("crown", "interval"):
        raise InputError(f"intermediate must be 'crown' or 'interval', got {intermediate!r}")
    if iterations < 0 or not lr > 0:
        raise InputError(f"need iterations >= 0 and lr > 0, got {iterations}, {lr}")
    inp = check_inputs(chain, lower, upper, C, prior)
    parts = []
    for sl in inp.chunks(CHUNK_ELEMS // 4):  # autograd keeps every step's tensors
        sub = inp.part(sl)
        with torch.no_grad():
            prep = prepare(sub.net, sub.lo, sub.hi, intermediate, sub.prior)
            base = final_bounds(prep, sub.C)
        parts.append(_optimise_chunk(prep, sub.C, base, optimize, iterations, lr))
    return assemble(parts, return_intermediate)


def _optimise_chunk(
    prep: Prepared, C: Tensor, base: ChunkBounds, optimize: str, iterations: int, lr: float
) -> ChunkBounds:
    if "relu" not in prep.net.kinds or iterations == 0:
        return base
    out = base
    if optimize in ("lower", "both"):
        bound, coef, offset = _optimise(prep, C, iterations, lr)
        better = bound > out.lower
        out = replace(
            out,
            lower=torch.where(better, bound, out.lower),
            lower_coef=torch.where(better.unsqueeze(-1), coef, out.lower_coef),
            lower_offset=torch.where(better, offset, out.lower_offset),
        )
    if optimize in ("upper", "both"):
        bound, coef, offset = _optimise(prep, -C, iterations, lr)
        better = -bound < out.upper
        out = replace(
            out,
            upper=torch.where(better, -bound, out.upper),
            upper_coef=torch.where(better.unsqueeze(-1), -coef, out.upper_coef),
            upper_offset=torch.where(better, -offset, out.upper_offset),
        )
    return out


def _optimise(
    prep: Prepared, spec: Tensor, iterations: int, lr: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Best lower bound of ``spec f(x)`` over the iterations, with its coefficients."""
    L = len(prep.net.W) - 1
    alphas: dict[int, Tensor] = {}
    for i, kind in enumerate(prep.net.kinds):
        if kind == "relu":
            lb, ub = prep.pre[i]
            alphas[i] = (ub > -lb).to(DT).requires_grad_(True)
    opt = Adam(list(alphas.values()), lr=lr)
    best: tuple[Tensor, Tensor, Tensor] | None = None
    for it in range(iterations + 1):
        relax = [
            relu_relaxation(*prep.pre[i], alphas[i]) if i in alphas else r
            for i, r in enumerate(prep.relax)
        ]
        coef, const, mag = backsub(prep.net, L, spec, relax, prep.vmag)
        bound = concretize(coef, const, mag, prep.lo, prep.hi)
        with torch.no_grad():
            best = _keep_best(best, bound.detach(), coef.detach(), (const - slack(mag)).detach())
        if it == iterations:
            break
        opt.zero_grad()
        (-bound.sum()).backward()
        opt.step()
        with torch.no_grad():
            for a in alphas.values():
                a.clamp_(0.0, 1.0)
    assert best is not None
    log.debug("alpha-CROWN: mean lower bound %.6g", float(best[0].mean()))
    return best


def _keep_best(
    best: tuple[Tensor, Tensor, Tensor] | None, bound: Tensor, coef: Tensor, offset: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    if best is None:
        return bound, coef, offset
    better = bound > best[0]
    return (
        torch.where(better, bound, best[0]),
        torch.where(better.unsqueeze(-1), coef, best[1]),
        torch.where(better, offset, best[2]),
    )
