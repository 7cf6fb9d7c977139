"""HiGHS instances built with their banner kept off stdout (HiGHS >= 1.8 prints it from
C++ on file descriptor 1 when an instance is built): stdout carries only verinet's own
output, such as ``verinet verify``'s verdict line.  Light: imports highspy alone, on first
use, so the star search's small LPs need neither scipy nor the MILP backends."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Route writes to file descriptor 1 (C++ code included) to descriptor 2 meanwhile."""
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError):  # no real descriptor 1 (embedded interpreters)
        yield
        return
    try:
        os.dup2(2, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def new_highs() -> Any:
    """A fresh ``highspy.Highs`` (its banner, if any, went to stderr)."""
    import highspy

    with stdout_to_stderr():
        return highspy.Highs()
