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
    with pytest.raises(KeyboardInterrupt):  # SIGINT's KeyboardInterrupt carries no message
        be.solve()
    assert time.monotonic() - t0 < 10.0
    # the backend stays usable: a short run afterwards is a plain time-limit stop
    be.set_time_limit(0.5)
    assert be.solve().status in (SolverStatus.TIME_LIMIT, SolverStatus.OPTIMAL)


@pytest.mark.slow
def test_sigint_stops_an_lp_solve_mid_simplex() -> None:
    """A dense LP (2500 x 2500) whose solve takes about 7 s on a quiet 2-core machine
    (2.5 s of it in presolve, where HiGHS calls no callback): a signal during the
    simplex stops it within a second (the simplex interrupt callback), where before it
    surfaced only when the whole solve had finished; the backend stays usable."""
    be = big_lp(0, 2500)
    t0 = time.monotonic()
    _signal_after(3.5, signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):  # SIGINT's KeyboardInterrupt carries no message
        be.solve()
    assert time.monotonic() - t0 < 3.5 + 1.5
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
    # SIGINT's KeyboardInterrupt carries no message
    with pytest.raises(KeyboardInterrupt), deferred_signals() as pending:
        signal.raise_signal(signal.SIGINT)
        assert pending  # recorded, not raised, inside the block
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
