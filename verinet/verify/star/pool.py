"""The star-set search on several processes (time-sliced work sharing).

The parent keeps the stack of stars.  A worker process (forked, so it shares the search's
network, property and options without pickling them) takes a few stars, explores them
depth-first with its own LP solver for ``slice_s`` seconds, and hands back what is left
of its stack together with its counters.  Short slices keep both cores busy however
unbalanced the subtrees are; the stacks travel as pickles of a few hundred kilobytes.

The worker API is explicit: each worker is forked with the list of searches and one end
of a pipe (:func:`serve`); it receives ``(search index, stars, seconds)`` and answers with
a :class:`Slice` (or a :class:`SliceFailed`).  No state lives in module globals.

Soundness does not depend on the schedule: the stars handed out and handed back always
cover exactly what the serial search would still have to cover (a star leaves the
parent's stack only inside a slice that either returns its uncovered remainder or fails,
and a failed, lost or unfinished slice makes the search unfinished, never proven).

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
import os
import signal
import threading
import time
import traceback
import warnings
from dataclasses import dataclass, field, fields, replace
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING

import numpy as np

from verinet.types import Counterexample
from verinet.verify.star.lp import PolyLp
from verinet.verify.star.search import Search, drive, prepare_searches
from verinet.verify.star.state import Star, StarOptions, StarOutcome, Stats
from verinet.verify.witness import snap_into_box

if TYPE_CHECKING:
    from verinet.ir.chain import Chain
    from verinet.spec.property import Property
    from verinet.verify.deadline import Deadline
    from verinet.verify.witness import Replayer

log = logging.getLogger(__name__)

CANDIDATE_TOL = 1e-6  # chain violation up to which a point goes back to the parent
MAX_CANDIDATES = 16   # per slice
POLL_S = 0.05  # the coordinator checks the deadline and the stop event this often


def worker_count(requested: int) -> int:
    """``requested`` processes, or every usable core for 0 (always 1 where processes
    cannot be forked, e.g. on Windows)."""
    if "fork" not in mp.get_all_start_methods():
        return 1
    if requested > 0:
        return requested
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


# ----------------------------------------------------------------------------- worker side


class Recorder:
    """Stands in for the Replayer inside a worker: records candidates, confirms none."""

    def __init__(self, search: Search) -> None:
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
class Slice:
    """What a worker hands back."""

    stack: list[Star]
    stats: Stats  # the slice's own counts
    lps: int = 0
    candidates: list[tuple[np.ndarray, int]] = field(default_factory=list)


@dataclass(frozen=True)
class SliceFailed:
    """A slice that raised: the error and the worker's traceback (text)."""

    error: BaseException
    trace: str


class WorkerTraceback(Exception):
    """The traceback of an error raised in a worker (the ``__cause__`` of the re-raised
    error)."""


def prepare_worker(searches: list[Search]) -> None:
    """In the forked child: the default SIGTERM action (the parent's handler, whoever
    installed it, is not the worker's: :meth:`StarPool.close` stops workers with it),
    fresh LP solvers and recording replayers."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    for search in searches:
        search.lp = PolyLp(search.box_lo, search.box_hi)
        search.replayer = Recorder(search)  # type: ignore[assignment]  # worker stand-in


def work_slice(search: Search, stars: list[Star], seconds: float) -> Slice:
    """Explore ``stars`` of ``search`` depth-first for ``seconds``; return the rest and
    the counters."""
    recorder = search.replayer
    assert isinstance(recorder, Recorder)
    recorder.found = []
    search.stats = stats = Stats(stars=0)
    lps0 = search.lp.solves
    stack = list(stars)
    end = time.monotonic() + seconds
    while stack and time.monotonic() < end and not search.deadline.expired():
        search.advance(stack.pop(), stack)
        if recorder.found:
            break
    return Slice(stack, stats, search.lp.solves - lps0, list(recorder.found))


def serve(searches: list[Search], conn: Connection) -> None:
    """A worker's main loop: ``(search index, stars, seconds)`` in, a :class:`Slice` or
    :class:`SliceFailed` out, until ``None`` or the parent's end of the pipe closes."""
    prepare_worker(searches)
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        index, stars, seconds = task
        out: Slice | SliceFailed
        try:
            out = work_slice(searches[index], stars, seconds)
        except Exception as e:  # noqa: BLE001 - handed to the parent, which re-raises it
            out = SliceFailed(e, traceback.format_exc())
        try:
            conn.send(out)  # pickles first: nothing is written when that fails
        except Exception as e:  # noqa: BLE001 - an unpicklable result or error
            conn.send(SliceFailed(RuntimeError(f"star worker cannot send its answer: {e!r}"),
                                  traceback.format_exc()))


# ----------------------------------------------------------------------------- parent side


class _Lost:
    """The answer of a worker that died holding a slice."""


LOST = _Lost()


class StarPool:
    """Worker processes for a list of searches, forked when constructed (construct it in
    the thread that owns the process, before other threads run native code)."""

    def __init__(self, searches: list[Search], workers: int) -> None:
        self.workers = workers
        self.limit = workers  # how many may be busy at once (changed by StarJob)
        self.stop = threading.Event()
        self._procs: list[mp.process.BaseProcess] = []
        self._conns: list[Connection] = []
        self._idle: list[int] = []      # workers waiting for a slice
        self._task_of: dict[int, int] = {}  # busy worker -> the run its slice belongs to
        self._runs = 0
        ctx = mp.get_context("fork")
        with warnings.catch_warnings():
            # Python >= 3.12 warns about fork() with other threads alive (the CLI's
            # watchdog timer, a caller's threads).  The children run only this
            # module's numpy/HiGHS code and take no lock those threads could hold.
            warnings.filterwarnings("ignore", message=r".*fork\(\) may lead to deadlocks",
                                    category=DeprecationWarning)
            for w in range(workers):
                here, there = ctx.Pipe()
                proc = ctx.Process(target=serve, args=(searches, there), daemon=True,
                                   name=f"star-worker-{w}")
                proc.start()
                there.close()
                self._procs.append(proc)
                self._conns.append(here)
                self._idle.append(w)

    def close(self) -> None:
        for proc in self._procs:
            proc.terminate()
        for proc in self._procs:
            proc.join(timeout=5.0)
            if proc.is_alive():  # SIGTERM caught after all: never wait forever
                proc.kill()
                proc.join()
        for conn in self._conns:
            conn.close()

    def alive(self) -> int:
        """How many worker processes are still running."""
        return sum(proc.is_alive() for proc in self._procs)

    def run(self, search: Search, stack: list[Star]) -> tuple[Counterexample | None, bool]:
        """Finish ``search`` from ``stack``: (counterexample, finished), with the meaning
        of :meth:`verinet.verify.star.search.Search.run`."""
        opts = search.options
        self._runs += 1
        run = self._runs
        log.info("star: %d worker processes from %d open stars", self.workers, len(stack))
        busy = 0  # slices of this run not answered yet
        lost = False  # a worker died holding (or being handed) a slice of this run
        while True:
            # An early return leaves slices running; the caller closes the pool then
            # (every early return ends the whole search).
            if self.stop.is_set():
                return None, False
            while stack and busy < self.limit and self._idle:
                # a share for one worker; the rest waits for whichever returns first
                take = max(1, -(-len(stack) // self.limit))
                chunk, stack[len(stack) - take:] = stack[len(stack) - take:], []
                if self._send(self._idle.pop(0), run, (search.index, chunk, opts.slice_s)):
                    busy += 1
                else:
                    lost = True
            if busy == 0:
                # Finished only if nothing is left: not when a slice went down with its
                # worker, nor when stars remain and no worker is left to take them.
                return None, not (lost or stack or search.deadline.expired())
            got = self._receive(run)
            if got is None:
                if search.deadline.expired():
                    return None, False
                continue
            busy -= 1
            if got is LOST:
                lost = True
                continue
            if isinstance(got, SliceFailed):
                raise got.error from WorkerTraceback(got.trace)
            cex = _merge(search, got, stack)
            if cex is not None:
                return cex, True
            search.report(len(stack))
            if search.deadline.expired() or search.stats.stars > opts.max_stars:
                return None, False

    def _send(self, w: int, run: int, task: tuple[int, list[Star], float]) -> bool:
        """Hand ``task`` to idle worker ``w``; False if the worker is dead (the task is
        lost with it, and the worker is not used again)."""
        try:
            self._conns[w].send(task)
        except OSError:
            log.warning("star: worker process %d died; its slice is lost", w)
            return False
        self._task_of[w] = run
        return True

    def _receive(self, run: int) -> Slice | SliceFailed | _Lost | None:
        """The next answer to a slice of ``run`` (None: none within ``POLL_S``).  Answers
        to slices of an earlier run are dropped; a worker that died takes its slice with
        it (``LOST``: the run can then only end unfinished) and is not used again."""
        if not self._task_of:
            self.stop.wait(POLL_S)
            return None
        ready = wait([self._conns[w] for w in self._task_of], timeout=POLL_S)
        for w in [w for w in self._task_of if self._conns[w] in ready]:
            slice_run = self._task_of.pop(w)
            try:
                got = self._conns[w].recv()
            except (EOFError, OSError):
                log.warning("star: worker process %d died; its slice is lost", w)
                if slice_run == run:
                    return LOST
                continue
            self._idle.append(w)
            if slice_run == run:
                return got
        return None


def _merge(search: Search, got: Slice, stack: list[Star]) -> Counterexample | None:
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
        try:
            self._out = drive(self._searches, lambda: self._pool)
        except BaseException as e:  # noqa: BLE001 - handed to the caller by result()
            self._out = e
        finally:
            self.finished.set()

    def set_workers(self, n: int) -> None:
        self._pool.limit = max(1, min(n, self._pool.workers))

    def alive_workers(self) -> int:
        """How many of the job's worker processes are still running."""
        return self._pool.alive()

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
