"""A monotonic deadline passed down to every engine (no global state)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field


class TimeoutReached(Exception):
    """Raised by ``Deadline.check`` when the time budget is spent."""


@dataclass(frozen=True)
class Deadline:
    """``seconds`` from ``start`` (time.monotonic); also expired once ``stop`` is set (a
    concurrent search that finished first)."""

    seconds: float
    start: float = field(default_factory=time.monotonic)
    stop: threading.Event | None = field(default=None, compare=False)

    @property
    def at(self) -> float:
        return self.start + self.seconds

    def remaining(self) -> float:
        return max(0.0, self.at - time.monotonic())

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def expired(self) -> bool:
        return time.monotonic() >= self.at or (self.stop is not None and self.stop.is_set())

    def check(self) -> None:
        if self.expired():
            raise TimeoutReached(f"time budget of {self.seconds:.1f} s spent")

    def sub(self, fraction: float = 1.0, cap: float | None = None,
            stop: threading.Event | None = None) -> Deadline:
        """A child deadline for a fraction of what remains (optionally capped), stopped by
        ``stop`` or else by this deadline's own event."""
        s = self.remaining() * fraction
        if cap is not None:
            s = min(s, cap)
        return Deadline(s, stop=stop if stop is not None else self.stop)
