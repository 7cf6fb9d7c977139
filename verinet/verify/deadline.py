"""A monotonic deadline passed down to every engine (no global state)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


class TimeoutReached(Exception):
    """Raised by ``Deadline.check`` when the time budget is spent."""


@dataclass(frozen=True)
class Deadline:
    """``seconds`` from ``start`` (time.monotonic)."""

    seconds: float
    start: float = field(default_factory=time.monotonic)

    @property
    def at(self) -> float:
        return self.start + self.seconds

    def remaining(self) -> float:
        return max(0.0, self.at - time.monotonic())

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def expired(self) -> bool:
        return time.monotonic() >= self.at

    def check(self) -> None:
        if self.expired():
            raise TimeoutReached(f"time budget of {self.seconds:.1f} s spent")

    def sub(self, fraction: float = 1.0, cap: float | None = None) -> Deadline:
        """A child deadline for a fraction of what remains (optionally capped)."""
        s = self.remaining() * fraction
        if cap is not None:
            s = min(s, cap)
        return Deadline(s)
