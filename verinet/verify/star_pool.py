"""The star-set search on several processes (time-sliced work sharing).

The parent keeps the stack of stars.  A worker process (forked, so it shares the search's
network, property and options without pickling them) takes a few stars, explores them
depth-first with its own LP solver for ``slice_s`` seconds, and hands back what is left
of its stack together with its counters.  Short slices keep both cores busy however
unbalanced the subtrees are; the stacks travel as pickles of a few hundred kilobytes.

Soundness does not depend on the schedule: the stars handed out and handed back always
cover exactly what the serial search would still have to cover (a star leaves the
parent's stack only inside a slice that either returns its uncovered remainder or fails,
and a failed or unfinished slice makes the search unfinished, never proven).

Witnesses: a worker never confirms anything.  A candidate that violates a term on the
chain (float64, a loose ``1e-6`` tolerance) is sent back and replayed by the parent's
:class:`~verinet.verify.witness.Replayer` on the IR and on the original ONNX model, the
same check the serial search makes; the worker ends its slice at once so a real
counterexample stops the search quickly.  With more than one worker the order in which
stars are explored depends on timing: the verdict does not, the witness of a ``sat``
answer may (``workers=1`` is fully reproducible).

Workers are forked: only numpy and HiGHS run in them (the search never touches torch).
A worker that raises stops the search and the error is re-raised in the parent.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import queue
import threading
import time
import warnings
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING

import numpy as np

from verinet.types import Counterexample
from verinet.verify.star_lp import PolyLp
from verinet.verify.witness import snap_into_box

if TYPE_CHECKING:
    from verinet.ir.chain import Chain
    from verinet.spec.property import Property
    from verinet.verify.deadline import Deadline
    from verinet.verify.star import StarOptions, StarOutcome, _Search, _Star, _Stats
    from verinet.verify.witness import Replayer

log = logging.getLogger(__name__)

CANDIDATE_TOL = 1e-6  # chain violation up to which a point goes back to the parent
MAX_CANDIDATES = 16   # per slice
POLL_S = 0.05  # the coordinator checks the deadline and the stop event this often

_SEARCHES: list[_Search] | None = None  # set in the parent just before forking


class _Recorder:
    """Stands in for the Replayer inside a worker: records candidates, confirms none."""

    def __init__(self, search: _Search) -> None:
        self.chain, self.prop = search.chain, search.prop
        self.found: list[tuple[np.ndarray, int]] = []

    def confirm(self, x: np.ndarray, term_index: int | None = None) -> None:
        t = 0 if term_index is None else int(term_index)
        term = self.prop.terms[t]
        xs = snap_into_box(x, term)
        y = self.chain.forward(xs[None, :])[0]
        if float(term.unsafe.violation(y)) <= CANDIDATE_TOL and len(self.found) < MAX_CANDIDATES:
            self.found.append((np.asarray(x, dtype=np.float64).copy(), t))
        return None


@dataclass
class _Slice:
    """What a worker hands back."""

    stack: list[_Star]
    stats: _Stats  # the slice's own counts
    lps: int = 0
    candidates: list[tuple[np.ndarray, int]] = field(default_factory=list)


def _worker_init() -> None:
    """In the forked child: fresh LP solvers and recording replayers."""
    assert _SEARCHES is not None
    for search in _SEARCHES:
        search.lp = PolyLp(search.box_lo, search.box_hi)
        search.replayer = _Recorder(search)  # type: ignore[assignment]


def _worker_slice(index: int, stars: list[_Star], seconds: float) -> _Slice:
    """Explore ``stars`` of search ``index`` depth-first for ``seconds``; return the rest
    and the counters."""
    from verinet.verify.star import _Stats

    assert _SEARCHES is not None
    search = _SEARCHES[index]
    recorder = search.replayer
    assert isinstance(recorder, _Recorder)
    recorder.found = []
    search.stats = stats = _Stats(stars=0)
    lps0 = search.lp.solves
    stack = list(stars)
    end = time.monotonic() + seconds
    while stack and time.monotonic() < end and not search.deadline.expired():
        search._advance(stack.pop(), stack)
        if recorder.found:
            break
    return _Slice(stack, stats, search.lp.solves - lps0, list(recorder.found))


class StarPool:
    """Worker processes for a list of searches, forked when constructed (construct it in
    the thread that owns the process, before other threads run native code)."""

    def __init__(self, searches: list[_Search], workers: int) -> None:
        global _SEARCHES
        self.workers = workers
        self.limit = workers  # how many may be busy at once (changed by StarJob)
        self.stop = threading.Event()
        _SEARCHES = searches
        try:
            with warnings.catch_warnings():
                # Python >= 3.12 warns about fork() with other threads alive (the CLI's
                # watchdog timer, a caller's threads).  The children run only this
                # module's numpy/HiGHS code and take no lock those threads could hold.
                warnings.filterwarnings("ignore", message=r".*fork\(\) may lead to deadlocks",
                                        category=DeprecationWarning)
                self.pool = mp.get_context("fork").Pool(workers, initializer=_worker_init)
        finally:
            _SEARCHES = None

    def close(self) -> None:
        self.pool.terminate()
        self.pool.join()

    def run(self, search: _Search, stack: list[_Star]) -> tuple[Counterexample | None, bool]:
        """Finish ``search`` from ``stack``: (counterexample, finished), with the meaning
        of :meth:`verinet.verify.star._Search.run`."""
        opts = search.options
        done: queue.SimpleQueue[_Slice | BaseException] = queue.SimpleQueue()
        log.info("star: %d worker processes from %d open stars", self.workers, len(stack))
        busy = 0
        while True:
            # An early return leaves slices running; the caller closes the pool then
            # (every early return ends the whole search).
            if self.stop.is_set():
                return None, False
            while stack and busy < self.limit:
                # a share for one worker; the rest waits for whichever returns first
                take = max(1, -(-len(stack) // self.limit))
                chunk, stack[len(stack) - take:] = stack[len(stack) - take:], []
                self.pool.apply_async(_worker_slice, (search.index, chunk, opts.slice_s),
                                      callback=done.put, error_callback=done.put)
                busy += 1
            if busy == 0:
                return None, not search.deadline.expired()
            try:
                got = done.get(timeout=POLL_S)
            except queue.Empty:
                if search.deadline.expired():
                    return None, False
                continue
            busy -= 1
            if isinstance(got, BaseException):
                raise got
            cex = _merge(search, got, stack)
            if cex is not None:
                return cex, True
            search.report(len(stack))
            if search.deadline.expired() or search.stats.stars > opts.max_stars:
                return None, False


def _merge(search: _Search, got: _Slice, stack: list[_Star]) -> Counterexample | None:
    """Fold a slice's counters and stack into the parent; replay its candidates."""
    for f in fields(got.stats):
        setattr(search.stats, f.name, getattr(search.stats, f.name) + getattr(got.stats, f.name))
    search.worker_lps += got.lps
    stack.extend(got.stack)
    for x, t in got.candidates:
        cex = search.replayer.confirm(x, t)
        if cex is not None:
            return cex
    return None


class StarJob:
    """The star search running beside other work of this process: the worker processes
    are forked at construction (from the calling thread), a coordinator thread hands out
    their slices.  ``set_workers`` changes how many work at once (one while the caller
    keeps a core busy, all afterwards); ``cancel`` stops it; ``result`` waits for it."""

    def __init__(self, chain: Chain, prop: Property, replayer: Replayer, deadline: Deadline,
                 terms: list[int], options: StarOptions, workers: int,
                 active: int = 1) -> None:
        from verinet.verify.star import prepare_searches

        quick = replace(options, serial_s=0.0)  # the coordinator never advances stars
        self._searches = prepare_searches(chain, prop, replayer, deadline, terms, quick)
        self._pool = StarPool(self._searches, workers)
        self._pool.limit = max(1, min(active, workers))
        self._out: StarOutcome | BaseException | None = None
        self.finished = threading.Event()  # set when the search has its outcome
        self._thread = threading.Thread(target=self._main, name="star-coordinator",
                                        daemon=True)
        self._thread.start()

    def _main(self) -> None:
        from verinet.verify.star import drive

        try:
            self._out = drive(self._searches, lambda: self._pool)
        except BaseException as e:  # noqa: BLE001 - handed to the caller by result()
            self._out = e
        finally:
            self.finished.set()

    def set_workers(self, n: int) -> None:
        self._pool.limit = max(1, min(n, self._pool.workers))

    def cancel(self) -> None:
        self._pool.stop.set()
        self._thread.join()
        self._pool.close()

    def result(self) -> StarOutcome:
        self._thread.join()
        self._pool.close()
        if isinstance(self._out, BaseException):
            raise self._out
        assert self._out is not None
        return self._out
