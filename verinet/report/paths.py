"""Output paths checked before any work starts, so that a run never computes for an hour
and then fails to write (the write itself stays atomic: :mod:`verinet.report.atomic`)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from verinet.types import InputError


def check_output(path: str | os.PathLike[str], what: str) -> None:
    """Raise a one-line :class:`InputError` unless ``path`` can be written: not a
    directory, its directory exists, and a file can be created there (probed, so that
    permissions, read-only file systems and quotas all count; an existing file is kept)."""
    p = Path(path)
    if str(path) == "":
        raise InputError(f"{what}: empty path")
    if p.is_dir():
        raise InputError(f"{what} {p}: is a directory, not a file")
    parent = p.parent
    if not parent.exists():
        raise InputError(f"{what} {p}: directory {parent} does not exist")
    if not parent.is_dir():
        raise InputError(f"{what} {p}: {parent} is not a directory")
    if p.exists() and not os.access(p, os.W_OK):
        raise InputError(f"{what} {p}: file is not writable")
    try:
        fd, probe = tempfile.mkstemp(dir=parent, prefix=f".{p.name}.", suffix=".probe")
    except OSError as e:
        raise InputError(f"{what} {p}: cannot write in {parent}: {e.strerror or e}") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)


def check_outputs(paths: Iterable[tuple[str, str | os.PathLike[str] | None]]) -> None:
    """:func:`check_output` on every ``(what, path)`` whose path is given; two outputs
    on one path are refused too (the second would overwrite the first)."""
    seen: dict[str, str] = {}
    for what, path in paths:
        if path is None:
            continue
        check_output(path, what)
        key = os.path.realpath(path)
        if key in seen:
            raise InputError(f"{what} and {seen[key]} are the same file {path}")
        seen[key] = what
