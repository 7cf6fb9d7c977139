"""PGD on a property's violation: search each term's box for a point in its unsafe set.

The loss of a sample attacking term ``t`` is ``max_i (A_i f(x) - b_i)`` over the rows of
``t``; it is <= 0 exactly when ``f(x)`` is unsafe.  All (term, restart) pairs run as one
torch batch with per-sample boxes, so disjunctive properties cost one forward pass per
step.  Results are *candidates*: the caller must replay them (``verify.witness``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from verinet.ir.graph import Network
from verinet.ir.torch import torch_network
from verinet.spec.property import Property
from verinet.verify.deadline import Deadline

_PAD_B = 1e30  # padded rows: 0 @ y - 1e30 never attains the max


@dataclass(frozen=True)
class PgdOptions:
    """Steps per restart, restarts per term, final step fraction of the initial one."""

    steps: int = 50
    restarts: int = 8
    initial_step: float = 0.25   # fraction of the box width
    final_step: float = 0.005
    dtype: torch.dtype = torch.float32

    def __post_init__(self) -> None:
        if self.steps < 1 or self.restarts < 1:
            raise ValueError("PGD needs at least one step and one restart")


@dataclass(frozen=True)
class Candidates:
    """The best point found per (term, restart) and its violation (<= 0 = unsafe)."""

    x: np.ndarray          # (N, n) float64
    term: np.ndarray       # (N,) term index
    violation: np.ndarray  # (N,) float64, evaluated in the attack dtype


def stacked_terms(prop: Property) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-term (lower, upper, A, b) stacked, halfspace rows padded to a common count."""
    k = max(max(t.unsafe.A.shape[0] for t in prop.terms), 1)
    m = prop.n_outputs
    T = len(prop.terms)
    A = np.zeros((T, k, m))
    b = np.full((T, k), _PAD_B)
    for i, t in enumerate(prop.terms):
        r = t.unsafe.A.shape[0]
        A[i, :r] = t.unsafe.A
        b[i, :r] = t.unsafe.b
        if r == 0:
            b[i, 0] = 0.0  # an unconstrained output set: violation 0 everywhere
    lo = np.stack([t.box.lower for t in prop.terms])
    hi = np.stack([t.box.upper for t in prop.terms])
    return lo, hi, A, b


def property_pgd(
    net: Network,
    prop: Property,
    rng: np.random.Generator,
    options: PgdOptions = PgdOptions(),
    deadline: Deadline | None = None,
) -> Candidates:
    """Run PGD on every term of ``prop``; restart 0 starts at the box centre."""
    lo, hi, A, b = stacked_terms(prop)
    T, R = len(prop.terms), options.restarts
    idx = np.repeat(np.arange(T), R)
    dt = options.dtype
    lo_t = torch.as_tensor(lo[idx], dtype=dt)
    hi_t = torch.as_tensor(hi[idx], dtype=dt)
    A_t = torch.as_tensor(A[idx], dtype=dt)
    b_t = torch.as_tensor(b[idx], dtype=dt)
    start = rng.uniform(lo[idx], hi[idx])
    start[::R] = (lo + hi) / 2.0
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
            x = x - alpha * width * torch.sign(g)
            x = torch.max(torch.min(x, hi_t), lo_t)
    return Candidates(best_x.double().numpy(), idx, best_v.double().numpy())
