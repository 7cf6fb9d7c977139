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
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from verinet.types import Counterexample
from verinet.verify.star_lp import PolyLp
from verinet.verify.witness import snap_into_box

if TYPE_CHECKING:
    from verinet.verify.star import _Search, _Star

log = logging.getLogger(__name__)

CANDIDATE_TOL = 1e-6  # chain violation up to which a point goes back to the parent
MAX_CANDIDATES = 16   # per slice

_SEARCH: _Search | None = None  # set in the parent just before forking


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
    stars: int = 0
    leaves: int = 0
    overapprox: int = 0
    dropped: int = 0
    unresolved: int = 0
    lps: int = 0
    candidates: list[tuple[np.ndarray, int]] = field(default_factory=list)


def _worker_init() -> None:
    """In the forked child: a fresh LP solver and the recording replayer."""
    search = _SEARCH
    assert search is not None
    search.lp = PolyLp(search.box_lo, search.box_hi)
    search.replayer = _Recorder(search)  # type: ignore[assignment]


def _worker_slice(stars: list[_Star], seconds: float) -> _Slice:
    """Explore ``stars`` depth-first for ``seconds``; return the rest and the counters."""
    from verinet.verify.star import _Stats

    search = _SEARCH
    assert search is not None
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
    return _Slice(stack, stats.stars, stats.leaves, stats.overapprox, stats.dropped,
                  stats.unresolved, search.lp.solves - lps0, list(recorder.found))


def run_parallel(search: _Search, stack: list[_Star],
                 workers: int) -> tuple[Counterexample | None, bool]:
    """Finish ``search`` from ``stack`` on ``workers`` processes: (counterexample,
    finished), with the meaning of :meth:`verinet.verify.star._Search.run`."""
    global _SEARCH
    opts = search.options
    done: queue.SimpleQueue[_Slice | BaseException] = queue.SimpleQueue()
    _SEARCH = search
    pool = mp.get_context("fork").Pool(workers, initializer=_worker_init)
    _SEARCH = None
    log.info("star: %d worker processes from %d open stars", workers, len(stack))
    busy = 0
    try:
        while True:
            while stack and busy < workers:
                idle = workers - busy
                take = max(1, len(stack) // idle)
                chunk, stack[len(stack) - take:] = stack[len(stack) - take:], []
                pool.apply_async(_worker_slice, (chunk, opts.slice_s),
                                 callback=done.put, error_callback=done.put)
                busy += 1
            if busy == 0:
                return None, not search.deadline.expired()
            try:
                got = done.get(timeout=max(0.05, min(1.0, search.deadline.remaining())))
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
    finally:
        pool.terminate()
        pool.join()


def _merge(search: _Search, got: _Slice, stack: list[_Star]) -> Counterexample | None:
    """Fold a slice's counters and stack into the parent; replay its candidates."""
    s = search.stats
    s.stars += got.stars
    s.leaves += got.leaves
    s.overapprox += got.overapprox
    s.dropped += got.dropped
    s.unresolved += got.unresolved
    search.worker_lps += got.lps
    stack.extend(got.stack)
    for x, t in got.candidates:
        cex = search.replayer.confirm(x, t)
        if cex is not None:
            return cex
    return None
