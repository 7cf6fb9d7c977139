"""PGD on a property's violation: search each term's box for a point in its unsafe set.

The loss of a sample attacking term ``t`` is ``max_i (A_i f(x) - b_i)`` over the rows of
``t``; it is <= 0 exactly when ``f(x)`` is unsafe.  All (term, restart) pairs run as one
torch batch with per-sample boxes, so disjunctive properties cost one forward pass per
step.  Results are *candidates*: the caller must replay them (``verify.witness``).

Two things matter on large low-dimensional boxes (ACAS Xu): ReLU networks there have wide
plateaus where every path to the loss is dead (zero gradient; on ACAS 1_9 property 7
three quarters of the box), so a sample with a zero gradient takes a random sign step
instead of standing still; and the unsafe set often hugs the box's faces and corners, so
``starts="vertices"`` (or ``"mixed"``: half of them) starts the restarts at the box's
vertices (cycled in random order) with a small first step, a local random walk around
every corner.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from verinet.ir.graph import Network
from verinet.ir.torch import torch_network
from verinet.spec.matrices import stacked_terms
from verinet.spec.property import Property
from verinet.verify.deadline import Deadline


@dataclass(frozen=True)
class PgdOptions:
    """Steps per restart, restarts per term, first and last step (fractions of the box
    width), where the restarts start (``"random"``: restart 0 at the box centre, the
    others uniform; ``"vertices"``: the box's vertices; ``"mixed"``: the first half of
    each term's restarts at vertices, the others uniform)."""

    steps: int = 50
    restarts: int = 8
    initial_step: float = 0.25   # fraction of the box width
    final_step: float = 0.005
    dtype: torch.dtype = torch.float32
    starts: str = "random"

    def __post_init__(self) -> None:
        if self.steps < 1 or self.restarts < 1:
            raise ValueError("PGD needs at least one step and one restart")
        if self.starts not in ("random", "vertices", "mixed"):
            raise ValueError(f"unknown PGD starts {self.starts!r}")


#: "vertices" enumerates all corners up to this dimension, else draws random ones.
MAX_VERTEX_DIM = 12


@dataclass(frozen=True)
class Candidates:
    """The best point found per (term, restart) and its violation (<= 0 = unsafe)."""

    x: np.ndarray          # (N, n) float64
    term: np.ndarray       # (N,) term index
    violation: np.ndarray  # (N,) float64, evaluated in the attack dtype


def property_pgd(
    net: Network,
    prop: Property,
    rng: np.random.Generator,
    options: PgdOptions = PgdOptions(),
    deadline: Deadline | None = None,
) -> Candidates:
    """Run PGD on every term of ``prop`` from ``options.starts``."""
    lo, hi, A, b = stacked_terms(prop)
    T, R = len(prop.terms), options.restarts
    idx = np.repeat(np.arange(T), R)
    dt = options.dtype
    lo_t = torch.as_tensor(lo[idx], dtype=dt)
    hi_t = torch.as_tensor(hi[idx], dtype=dt)
    A_t = torch.as_tensor(A[idx], dtype=dt)
    b_t = torch.as_tensor(b[idx], dtype=dt)
    if options.starts in ("vertices", "mixed"):
        # "mixed": the first half of each term's restarts at vertices, the rest uniform
        nv = R if options.starts == "vertices" else (R + 1) // 2
        corner = np.concatenate([_corners(lo.shape[1], nv, rng) for _ in range(T)])
        at_vertex = np.tile(np.arange(R) < nv, T)
        start = rng.uniform(lo[idx], hi[idx])
        start[at_vertex] = np.where(corner, hi[idx][at_vertex], lo[idx][at_vertex])
    else:
        start = rng.uniform(lo[idx], hi[idx])
        start[::R] = (lo + hi) / 2.0
    gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
    x = torch.as_tensor(start, dtype=dt)
    width = hi_t - lo_t
    model = torch_network(net, dt)
    best_x = x.clone()
    best_v = torch.full((x.shape[0],), float("inf"), dtype=dt)
    decay = (options.final_step / options.initial_step) ** (1.0 / max(1, options.steps - 1))
    for step in range(options.steps + 1):
        x.requires_grad_(True)
        y = model(x)
        v = (torch.einsum("nkm,nm->nk", A_t, y) - b_t).amax(dim=1)
        better = v.detach() < best_v
        best_v = torch.where(better, v.detach(), best_v)
        best_x[better] = x.detach()[better]
        if step == options.steps or (deadline is not None and deadline.expired()):
            break
        (g,) = torch.autograd.grad(v.sum(), x)
        alpha = options.initial_step * decay**step
        with torch.no_grad():
            step = torch.sign(g)
            flat = ~step.bool().any(dim=1)
            if bool(flat.any()):  # a plateau: walk randomly instead of standing still
                rnd = torch.randint(0, 2, (int(flat.sum()), step.shape[1]), generator=gen)
                step[flat] = (2 * rnd - 1).to(dt)
            x = x - alpha * width * step
            x = torch.max(torch.min(x, hi_t), lo_t)
    return Candidates(best_x.double().numpy(), idx, best_v.double().numpy())


def _corners(d: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` vertex choices (True: the upper bound) of a ``d``-box: every vertex in random
    order, cycled, for ``d <= MAX_VERTEX_DIM``; random vertices above."""
    if d > MAX_VERTEX_DIM:
        return rng.uniform(size=(n, d)) < 0.5
    order = rng.permutation(2**d)
    ids = order[np.arange(n) % order.size]
    return ((ids[:, None] >> np.arange(d)) & 1).astype(bool)
