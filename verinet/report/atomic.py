"""Atomic file writes: a temp file beside the target, renamed over it."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from verinet.types import InputError


def atomic_write(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the whole new one;
    on failure the old file is untouched and a one-line :class:`InputError` is raised."""
    p = Path(path)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise InputError(f"cannot write {p}: {e.strerror or e}") from None
    except BaseException:  # e.g. KeyboardInterrupt: no temp file left behind
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
