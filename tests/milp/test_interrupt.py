"""An interrupt during a HiGHS MIP or LP solve is an interruption, not a solver error: the
solve stops promptly and the signal surfaces as its exception (KeyboardInterrupt for
SIGINT, Terminated for SIGTERM under the command line's handler)."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from tests.hard_mip import big_lp
from tests.hard_mip import market_split as _market_split
from verinet.interrupts import Terminated, deferred_signals, exit_code, terminate_raises
from verinet.milp.backend import SolverStatus


def _signal_after(seconds: float, signum: int) -> threading.Timer:
    t = threading.Timer(seconds, os.kill, (os.getpid(), signum))
    t.start()
    return t


def test_sigint_stops_a_mip_solve_and_is_raised() -> None:
    be = _market_split()
    t0 = time.monotonic()
    _signal_after(1.0, signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        be.solve()
    assert time.monotonic() - t0 < 10.0
    # the backend stays usable: a short run afterwards is a plain time-limit stop
    be.set_time_limit(0.5)
    assert be.solve().status in (SolverStatus.TIME_LIMIT, SolverStatus.OPTIMAL)


def test_sigint_stops_an_lp_solve_mid_simplex() -> None:
    """A dense LP whose simplex runs for many seconds (about 10 s at n = 2000 on a
    loaded 2-core machine) stops promptly (highspy's run() waits interruptibly and
    cancels the solve; measured 0.03 s after the signal), and the backend stays usable."""
    be = big_lp(0, 2500)
    t0 = time.monotonic()
    _signal_after(0.5, signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        be.solve()
    assert time.monotonic() - t0 < 3.0
    be.set_time_limit(0.2)
    assert be.solve().status in (SolverStatus.TIME_LIMIT, SolverStatus.OPTIMAL)


def test_sigterm_under_the_cli_handler_raises_terminated() -> None:
    be = _market_split(1)
    with terminate_raises():
        _signal_after(1.0, signal.SIGTERM)
        with pytest.raises(Terminated, match="SIGTERM") as info:
            be.solve()
    assert exit_code(info.value) == 143
    assert exit_code(KeyboardInterrupt()) == 130


def test_deferred_signals_restore_the_handlers() -> None:
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with deferred_signals() as pending:
        assert not pending
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    with pytest.raises(KeyboardInterrupt), deferred_signals() as pending:
        signal.raise_signal(signal.SIGINT)
        assert pending  # recorded, not raised, inside the block
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
