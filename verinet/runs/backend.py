"""Where samples run (:class:`Backend`) and how many cores this process may use.  Light:
the command line reads it before torch is imported (``--ray`` starts its cluster then)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from verinet.types import InputError


def usable_cores() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class Backend:
    """Where samples run: ``jobs`` local worker processes (1: in this process), or Ray
    (``ray``: ``"local"`` or a cluster address; ``jobs`` None there means one worker per
    cluster CPU).  ``threads``: each worker's torch thread budget.  ``task_timeout``:
    seconds one sample may run before its worker is killed (None: no limit)."""

    jobs: int | None = 1
    threads: int = 1
    ray: str | None = None
    task_timeout: float | None = None

    def __post_init__(self) -> None:
        if self.jobs is not None and self.jobs < 1:
            raise InputError(f"--jobs must be at least 1, got {self.jobs}")
        if self.threads < 1:
            raise InputError(f"--threads must be at least 1, got {self.threads}")
        if self.task_timeout is not None and not self.task_timeout > 0:
            raise InputError(f"--task-timeout must be > 0, got {self.task_timeout}")
