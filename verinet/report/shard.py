"""``--shard I/N``: a deterministic share of a run's samples (light: the command line
checks the option before it imports torch)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from verinet.types import InputError


@dataclass(frozen=True)
class Shard:
    """The parts ``parts`` of a run split ``count`` ways (``--shard I/N``: one part)."""

    count: int
    parts: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.count < 1 or not self.parts or len(set(self.parts)) != len(self.parts) or any(
                not 0 <= p < self.count for p in self.parts):
            raise InputError(f"bad shard {self.label()}: parts must be distinct, in "
                             f"0..{self.count - 1}")
        object.__setattr__(self, "parts", tuple(sorted(self.parts)))

    @staticmethod
    def parse(text: str) -> Shard:
        """``I/N`` with ``0 <= I < N``."""
        try:
            i, n = (int(t) for t in text.split("/"))
        except ValueError:
            raise InputError(f"--shard must be I/N (e.g. 0/4), got {text!r}") from None
        if n < 1 or not 0 <= i < n:
            raise InputError(f"--shard I/N needs 0 <= I < N, got {text!r}")
        return Shard(n, (i,))

    @property
    def whole(self) -> bool:
        return len(self.parts) == self.count

    def select(self, n: int) -> list[int]:
        """Positions ``0..n-1`` of the run's selection that belong to these parts."""
        parts = set(self.parts)
        return [p for p in range(n) if p % self.count in parts]

    def label(self) -> str:
        return f"{','.join(map(str, self.parts))}/{self.count}"

    def to_json(self) -> dict[str, Any] | None:
        return None if self.whole else {"count": self.count, "parts": list(self.parts)}

    @staticmethod
    def from_json(d: Mapping[str, Any] | None) -> Shard | None:
        return None if d is None else Shard(int(d["count"]), tuple(int(p) for p in d["parts"]))
