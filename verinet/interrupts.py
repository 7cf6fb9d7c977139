"""Interrupts (SIGINT, SIGTERM) that stop a run promptly and never become a result.

Python turns SIGINT into :class:`KeyboardInterrupt` in the main thread; the command line
turns SIGTERM into :class:`Terminated` (a ``KeyboardInterrupt``, so every ``except``
that lets an interrupt through lets this one through too) with :func:`terminate_raises`.

Native solvers run long stretches without executing Python: a signal that arrives then is
only seen when control comes back.  :func:`deferred_signals` covers such a stretch: it
records the signal in a :class:`Pending` flag the solver's own callback polls (HiGHS's
MIP interrupt callback), and re-raises it in the main thread once the stretch ends, so the
interrupt surfaces as an exception instead of being swallowed as a solver error.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

EXIT_SIGINT = 130  # 128 + SIGINT, the shell's convention
EXIT_SIGTERM = 143  # 128 + SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM received (raised in the main thread by :func:`terminate_raises`)."""


def exit_code(e: KeyboardInterrupt) -> int:
    """The process exit status for an interrupt: 143 for SIGTERM, 130 for SIGINT."""
    return EXIT_SIGTERM if isinstance(e, Terminated) else EXIT_SIGINT


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated("terminated (SIGTERM)")


@contextmanager
def terminate_raises() -> Iterator[None]:
    """Meanwhile, SIGTERM raises :class:`Terminated` in the main thread (a no-op off the
    main thread, where handlers cannot be installed)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


class Pending:
    """The signal received inside a :func:`deferred_signals` block (None if none)."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __bool__(self) -> bool:
        return self.signum is not None

    def _record(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum


_DEFERRED = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def deferred_signals() -> Iterator[Pending]:
    """Run a native stretch with SIGINT/SIGTERM recorded instead of raised; on leaving,
    the previous handlers come back and a recorded signal is raised again, so it takes
    its usual course (``KeyboardInterrupt``, :class:`Terminated`, or the default action).
    Off the main thread, or for a signal that is ignored, nothing is deferred (the
    yielded flag then stays false)."""
    pending = Pending()
    if threading.current_thread() is not threading.main_thread():
        yield pending
        return
    saved: dict[int, Any] = {}
    try:
        for s in _DEFERRED:
            old = signal.getsignal(s)
            if old is signal.SIG_IGN or old is None:
                continue
            signal.signal(s, pending._record)
            saved[s] = old
        yield pending
    finally:
        for s, old in saved.items():
            signal.signal(s, old)
    if pending.signum is not None:
        old = saved[pending.signum]
        if callable(old):  # KeyboardInterrupt, Terminated, or a caller's own handler
            old(pending.signum, None)
        else:  # SIG_DFL: the default action, as if never deferred
            signal.raise_signal(pending.signum)
