"""Counterexample search inside branch-and-bound domains (domain-guided PGD).

Gradient attacks on the whole box miss violations hidden in a small region whose
surroundings give no gradient (a narrow ReLU bump: the self-test's planted
counterexamples, ``verinet.selftest.planted``).  Branch and bound localises such regions:
once the bump's units are cut to their active phase, the worst domains are exactly the
regions where the violation may live, but the box vertex that minimises a domain's linear
bound (the only candidate a bounding step yields) rarely lies inside them.

So each round the ``domains`` alive domains with the lowest bounds are attacked: from
their vertex candidates, ``steps`` signed-gradient steps inside the box on

    max_k (C_k f(x) - b_k)  +  weight * sum_u [ (l'_u - z_u(x))+ + (z_u(x) - u'_u)+ ]

where ``z_u`` is the pre-activation of every unit the domain cut and ``[l'_u, u'_u]`` its
narrowed interval: the penalty pulls the point into the domain, where the margin's
gradient is informative.  A point counts only if its *real* output violates the term
(``max_k ... <= 0``); it need not lie in the domain.  Every candidate goes through the
:class:`~verinet.verify.witness.Replayer` (IR and ONNX), so the attack can only ever add
confirmed counterexamples, never a verdict of its own.

The attack's time is capped at ``share`` of the search's time so far, so it never slows a
proof by more than that share.
"""

from __future__ import annotations

import time

import torch
from torch import Tensor

from verinet.ir.torch import torch_network
from verinet.verify.graph_bab.options import DomainAttackOptions
from verinet.verify.graph_bab.root import GraphRoot

#: The last step over the first: regions of 1 % of the box need steps far below that.
DECAY = 1e-3


class DomainAttack:
    """The per-search attack state: the root's box and unit intervals, the time spent."""

    def __init__(self, root: GraphRoot, options: DomainAttackOptions) -> None:
        self.root, self.options = root, options
        self.net = torch_network(root.gm.network, torch.float32)
        self.x_lo = root.state.lo[root.gm.input_name].reshape(1, -1).to(torch.float32)
        self.x_hi = root.state.hi[root.gm.input_name].reshape(1, -1).to(torch.float32)
        r_lo, r_hi = root.unit_bounds()
        self.r_lo, self.r_hi = r_lo.to(torch.float32), r_hi.to(torch.float32)
        self.spent = 0.0
        self.started = time.perf_counter()

    def due(self) -> bool:
        """Whether this round may attack (within the time share)."""
        o = self.options
        if o.domains == 0 or self.root.size == 0:
            return False
        return self.spent <= o.share * (time.perf_counter() - self.started)

    def points(self, lo: Tensor, hi: Tensor, x0: Tensor, C: Tensor, b: Tensor) -> Tensor:
        """Attack domains with cut intervals ``lo``/``hi`` (N, U) from ``x0`` (N, n) on
        their rows ``C`` (N, K, m), ``b`` (N, K): the point (N, n, float64) with the
        lowest float32 margin seen per domain (the replayer decides)."""
        t0 = time.perf_counter()
        o, root = self.options, self.root
        lo, hi = lo.to(torch.float32), hi.to(torch.float32)
        cut_lo = lo > self.r_lo     # raised lower ends (N, U)
        cut_hi = hi < self.r_hi     # lowered upper ends
        C, b = C.to(torch.float32), b.to(torch.float32)
        width = self.x_hi - self.x_lo
        x = x0.to(torch.float32).clone()
        best_x, best_m = x.clone(), torch.full((x.shape[0],), torch.inf)
        targets = [root.gm.network.output_name, *root.inputs]
        shape = (x.shape[0],) + tuple(root.gm.network.input_shape[1:])
        for it in range(o.steps + 1):
            x.requires_grad_(True)
            env = self.net.run({root.gm.network.input_name: x.reshape(shape)}, targets)
            y = env[targets[0]].reshape(x.shape[0], -1)
            margin = ((C @ y.unsqueeze(-1)).squeeze(-1) - b).max(dim=1).values
            with torch.no_grad():
                better = margin < best_m
                best_m = torch.where(better, margin.detach(), best_m)
                best_x[better] = x.detach()[better]
            if it == o.steps:
                break
            z = torch.cat([env[n].reshape(x.shape[0], -1)[:, idx]
                           for n, idx in zip(root.inputs, root.index, strict=True)], dim=1)
            pen = (torch.where(cut_lo, (lo - z).clamp(min=0.0), 0.0)
                   + torch.where(cut_hi, (z - hi).clamp(min=0.0), 0.0)).sum(dim=1)
            (grad,) = torch.autograd.grad((margin + o.weight * pen).sum(), x)
            step = o.step * DECAY ** (it / max(1, o.steps - 1))
            with torch.no_grad():
                x = torch.minimum(torch.maximum(x - step * width * grad.sign(), self.x_lo),
                                  self.x_hi)
        self.spent += time.perf_counter() - t0
        return best_x.to(torch.float64)
