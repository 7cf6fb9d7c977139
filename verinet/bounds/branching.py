"""Branching scores of unstable ReLUs for branch and bound (larger = split first).

Both scores read the back-substitution coefficient ``lam`` of the unit's ReLU output in
the domain's best objective row, its pre-activation bounds ``l < 0 < u``, the upper slope
``s = u / (u - l)``, its intercept ``t = -s l`` and the unit's bias ``b``:

* ``intercept``: ``-min(lam, 0) t``, what the upper line's intercept costs the bound (the
  part of the bound a split of the unit removes, intermediate layers left aside);
* ``babsr`` (Bunel et al., JMLR 2020; ../shared/docs/algorithms.md section 4.3):
  ``|max(lam b (s - 1), lam b s) + min(lam, 0) t|``, which adds an estimate of how the
  unit's bias enters the bound after the split.

Each fails on some instances (measured on mnist-net_256x4 prop_3_0.05: BaBSR spends many
splits on last-layer units that change nothing, intercept explodes on one term), which is
why :mod:`verinet.bounds.split` also offers filtered smart branching ("fsb": the top
candidates of both scores, ranked by estimated child bounds).
"""

from __future__ import annotations

import torch
from torch import Tensor

SCORES = ("babsr", "intercept")


def branch_scores(kind: str, lam: Tensor, lo: Tensor, hi: Tensor, bias: Tensor) -> Tensor:
    """Scores (B, U) from coefficients ``lam``, bounds ``lo``/``hi`` (B, U) and biases (U,).
    Units that are not unstable get meaningless values: the caller masks them."""
    den = torch.where(hi > lo, hi - lo, 1.0)
    s = (hi / den).clamp(0.0, 1.0)
    t = -s * lo.clamp(max=0.0)
    inter = lam.clamp(max=0.0) * t
    if kind == "intercept":
        return -inter
    if kind != "babsr":
        raise ValueError(f"unknown branching score {kind!r}")
    return (torch.maximum(lam * bias * (s - 1.0), lam * bias * s) + inter).abs()


def candidates(scores: list[Tensor], unstable: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The top ``k`` units of every score, (B, K) positions and a (B, K) validity mask
    (False for units that are not unstable: fewer than ``k`` were)."""
    pos, ok = [], []
    k = min(k, unstable.shape[1])
    for sc in scores:
        sc = torch.where(unstable, sc, -torch.inf)
        top = sc.topk(k, dim=1)
        pos.append(top.indices)
        ok.append(torch.isfinite(top.values))
    return torch.cat(pos, dim=1), torch.cat(ok, dim=1)
