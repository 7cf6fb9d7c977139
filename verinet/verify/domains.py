"""Open branch-and-bound domains as a batch of tensors, and the pool that holds them.

A *domain batch* is any dataclass whose fields are tensors with one leading domain axis
and which has the fields ``depth`` (int64) and ``lb`` (the parent's lower bound, the
priority).  :func:`take` and :func:`concat` work on every such dataclass; the
:class:`DomainPool` stores domains in slots, so popping copies only the popped rows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Generic, TypeVar

import torch

from verinet.spec.property import Property

B = TypeVar("B")
Out = TypeVar("Out")


@dataclass
class SearchStats:
    """Counters of one branch-and-bound search (mutable while it runs)."""

    domains: int = 0          # domains bounded
    rounds: int = 0
    max_depth: int = 0
    max_queue: int = 0
    leaves: int = 0           # exact leaf solves
    unknown_leaves: int = 0   # leaves the exact solver could not decide
    infeasible: int = 0       # domains shown empty
    split_units: int = 0      # units a split may fix (the largest root's)
    gave_up: bool = False

    def outcome(self, kind: type[Out], proven: bool, cex: Any) -> Out:
        """An outcome dataclass ``kind`` with the counters it has: proven only if the
        search did not give up and left no unknown leaf."""
        names = {f.name for f in fields(kind)}  # type: ignore[arg-type]
        counts = {k: v for k, v in asdict(self).items() if k in names}
        ok = proven and not self.gave_up and self.unknown_leaves == 0
        return kind(proven=ok, counterexample=cex, **counts)


def take(batch: B, idx: torch.Tensor) -> B:
    """The domains ``idx`` of a batch."""
    return replace(batch, **{f.name: getattr(batch, f.name)[idx]  # type: ignore[type-var]
                             for f in fields(batch)})  # type: ignore[arg-type]


def concat(parts: list[B]) -> B:
    """One batch of the domains of ``parts`` (in order)."""
    first = parts[0]
    return replace(first, **{f.name: torch.cat([getattr(p, f.name) for p in parts])  # type: ignore[type-var]
                             for f in fields(first)})  # type: ignore[arg-type]


def size(batch: object) -> int:
    return int(batch.depth.shape[0])  # type: ignore[attr-defined]


class DomainPool(Generic[B]):
    """Slot storage of the open domains."""

    def __init__(self, first: B) -> None:
        self.store = first
        self.live = torch.ones(size(first), dtype=torch.bool)

    def __len__(self) -> int:
        return int(self.live.sum())

    def push(self, batch: B) -> None:
        n = size(batch)
        free = torch.nonzero(~self.live).reshape(-1)
        if len(free) < n:
            grow = max(n - len(free), len(self.live))
            filler = take(batch, torch.zeros(grow, dtype=torch.long))
            self.store = concat([self.store, filler])
            self.live = torch.cat([self.live, torch.zeros(grow, dtype=torch.bool)])
            free = torch.nonzero(~self.live).reshape(-1)
        slots = free[:n]
        for f in fields(batch):  # type: ignore[arg-type]
            getattr(self.store, f.name)[slots] = getattr(batch, f.name)
        self.live[slots] = True

    def pop(self, n: int, depth_first: bool) -> B:
        """The ``n`` domains with the lowest bound (or the deepest ones)."""
        key = -self.store.depth.to(torch.float64) if depth_first else self.store.lb.clone()  # type: ignore[attr-defined]
        key = key.to(torch.float64)
        key[~self.live] = torch.inf
        n = min(n, len(self))
        slots = torch.topk(key, n, largest=False).indices
        self.live[slots] = False
        return take(self.store, slots)


def box_groups(prop: Property, terms: list[int]) -> list[list[int]]:
    """Terms grouped by identical input box (they share one root)."""
    groups: dict[tuple[bytes, bytes], list[int]] = {}
    for t in terms:
        box = prop.terms[t].box
        groups.setdefault((box.lower.tobytes(), box.upper.tobytes()), []).append(t)
    return list(groups.values())


def next_batch(batch: int, seconds: float, cap: int, round_seconds: float) -> int:
    """The next round's batch size, keeping rounds near ``round_seconds`` so that a
    deadline is met closely."""
    if seconds > round_seconds and batch > 1:
        return batch // 2
    if seconds < round_seconds / 4:
        return min(cap, 2 * batch)
    return batch
