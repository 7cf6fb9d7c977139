"""The deadline passed to every engine: time, sub-budgets and the stop event."""

import threading
import time

import pytest

from verinet.verify.deadline import Deadline, TimeoutReached


def test_time_budget_and_sub_budgets():
    d = Deadline(10.0)
    assert not d.expired() and 9.0 < d.remaining() <= 10.0
    s = d.sub(0.5, cap=2.0)
    assert 0.0 < s.seconds <= 2.0
    gone = Deadline(0.0)
    assert gone.expired() and gone.remaining() == 0.0
    with pytest.raises(TimeoutReached, match=r"time budget of 0\.0 s spent"):
        gone.check()


def test_stop_event_expires_a_deadline_and_its_children():
    stop = threading.Event()
    d = Deadline(60.0, stop=stop)
    child = d.sub(1.0, cap=30.0)
    own = threading.Event()
    other = d.sub(1.0, stop=own)
    assert not (d.expired() or child.expired() or other.expired())
    stop.set()
    assert d.expired() and child.expired()
    assert not other.expired()  # a child given its own event follows that one
    own.set()
    assert other.expired()
    assert d.remaining() > 0.0  # the time left is still reported


def test_a_stopped_deadline_ends_a_search_early():
    stop = threading.Event()
    d = Deadline(60.0, stop=stop)
    threading.Timer(0.05, stop.set).start()
    t0 = time.monotonic()
    while not d.expired():
        time.sleep(0.005)
    assert time.monotonic() - t0 < 5.0
