"""``--jobs N``: samples in N local worker processes.

Each worker is a fresh (spawned) process that loads and checks the model once, sets its
own torch thread budget, and then runs one sample at a time, sent over its own pipe.  The
driver waits on every pipe and every process sentinel at once, so it always knows which
sample a worker held when it died (killed, out of memory): only that sample is lost, it
is run again once, and if it kills its worker a second time it is recorded as ``error``
with the reason while the run goes on.  A sample that runs past the per-task limit has
its worker killed (the same path).  A :class:`~verinet.types.SoundnessError` in a worker
stops the run (a bug is never recorded as a result).

Workers ignore SIGINT (Ctrl-C reaches the whole process group): the driver handles it,
stops them and keeps every finished sample.  A worker whose driver is gone sees its pipe
close and exits.

The job travels with each sample, so the workers can be started (:meth:`LocalPool.start`)
before the driver knows it, and before the driver imports the engines itself: this module
imports none of them (the workers do).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import signal
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any

from verinet.runs.source import ModelSource
from verinet.types import InputError, SoundnessError

if TYPE_CHECKING:
    from verinet.certify.result import SampleReport
    from verinet.runs.sample import Item, SampleJob

log = logging.getLogger(__name__)

#: How often a sample may kill its worker before it is recorded as ``error``.
MAX_ATTEMPTS = 2


@dataclass(frozen=True)
class Died:
    """A sample whose worker died on every attempt (``reason`` of the last)."""

    item: Item
    reason: str


class Retries:
    """The retry rule of every pool: a sample whose worker died runs again (first in
    ``queue``) until it has killed :data:`MAX_ATTEMPTS` workers, then it is given up."""

    def __init__(self, queue: deque[Item]) -> None:
        self.queue = queue
        self._lost: dict[int, int] = {}

    def lost(self, item: Item, reason: str) -> Died | None:
        """``item``'s worker died (``reason``): requeued, or the :class:`Died` to record."""
        n = self._lost[item.index] = self._lost.get(item.index, 0) + 1
        if n < MAX_ATTEMPTS:
            log.warning("sample %d: %s; running it again", item.index, reason)
            self.queue.appendleft(item)
            return None
        log.warning("sample %d: %s again; recorded as error", item.index, reason)
        return Died(item, f"{reason} on {n} attempts")


def timeout_reason(task_timeout: float) -> str:
    return f"it ran past the task timeout of {task_timeout:g} s"


def wait_seconds(task_timeout: float | None, starts: list[float]) -> float:
    """How long a pool may wait for results before a busy sample's task timeout (at most
    5 s, so the loop stays responsive)."""
    if task_timeout is None or not starts:
        return 5.0
    now = time.monotonic()
    return max(0.05, min([t + task_timeout - now for t in starts] + [5.0]))


def worker_main(conn: Connection, source: ModelSource, threads: int, log_level: int) -> None:
    """A worker process: load the model, then run ``(job, item)`` until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=log_level, format="%(levelname)s %(name)s: %(message)s")
    try:
        import torch

        from verinet.runs.sample import SampleRunner

        torch.set_num_threads(threads)
        model = source.load()
        runner = SampleRunner(model.network, model.onnx_eval)
    except Exception as e:  # noqa: BLE001 -- reported to the driver, which stops
        conn.send(("failed", " ".join(f"{type(e).__name__}: {e}".split())))
        return
    conn.send(("ready", None))
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        job, item = task
        try:
            msg: tuple[str, Any] = ("done", runner.attempt(job, item))
        except SoundnessError as e:
            msg = ("soundness", str(e))
        try:
            conn.send(msg)
        except (BrokenPipeError, OSError):
            return


@dataclass
class _Slot:
    proc: Any
    conn: Connection
    ready: bool = False
    item: Item | None = None
    started: float = 0.0
    killed_for: str = ""
    spawned: float = field(default_factory=time.monotonic)


class LocalPool:
    """N worker processes running :class:`~verinet.runs.sample.SampleJob` on items (module
    doc).  ``task_timeout``: seconds one sample may take before its worker is killed
    (None: no limit).  The job comes with :meth:`run`."""

    def __init__(self, source: ModelSource, jobs: int, threads: int = 1,
                 task_timeout: float | None = None) -> None:
        if jobs < 1:
            raise InputError(f"--jobs must be at least 1, got {jobs}")
        self.source, self.jobs, self.threads = source, jobs, threads
        self.task_timeout = task_timeout
        self._ctx = mp.get_context("spawn")
        self._slots: list[_Slot] = []

    def _spawn(self) -> _Slot:
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(
            target=worker_main, name="verinet-worker", daemon=True,
            args=(child, self.source, self.threads, logging.getLogger().level))
        proc.start()
        child.close()
        return _Slot(proc, parent)

    def start(self, n: int | None = None) -> LocalPool:
        """Start ``n`` workers (``jobs`` when None) now: they load the model while the
        caller goes on.  :meth:`run` uses them (and :meth:`close` stops them)."""
        want = self.jobs if n is None else min(n, self.jobs)
        self._slots += [self._spawn() for _ in range(want - len(self._slots))]
        return self

    def run(self, items: list[Item], job: SampleJob) -> Iterator[SampleReport | Died]:
        """Every item's report (or :class:`Died`), in the order they finish; workers
        started ahead beyond the items' count are stopped."""
        queue = deque(items)
        retries = Retries(queue)
        try:
            n = max(1, min(self.jobs, len(items)))
            self.start(n)
            _stop(self._slots[n:], grace=0.0)  # still loading: no need to wait for them
            del self._slots[n:]
            busy = 0
            while queue or busy:
                for s in self._slots:
                    if s.ready and s.item is None and queue:
                        s.item, s.started = queue.popleft(), time.monotonic()
                        busy += 1
                        try:
                            s.conn.send((job, s.item))
                        except (BrokenPipeError, OSError):
                            pass  # it just died: its sentinel says so below
                timeout = wait_seconds(self.task_timeout, [s.started for s in self._slots
                                                           if s.item is not None])
                ready = wait([s.conn for s in self._slots] + [s.proc.sentinel
                                                              for s in self._slots], timeout)
                for i, s in enumerate(self._slots):
                    if s.conn in ready or s.conn.poll():
                        try:
                            kind, payload = s.conn.recv()
                        except (EOFError, OSError):
                            kind, payload = "eof", None
                        if kind == "ready":
                            s.ready = True
                            continue
                        if kind == "failed":
                            raise InputError(f"a worker could not load the model: {payload}")
                        if kind == "soundness":
                            raise SoundnessError(payload)
                        if kind == "done":
                            s.item = None
                            busy -= 1
                            yield payload
                            continue
                    if s.proc.sentinel in ready or not s.proc.is_alive():
                        out = self._died(i, retries)
                        if s.item is not None:
                            busy -= 1
                        if out is not None:
                            yield out
                self._enforce_timeouts()
        finally:
            self.close()

    def _enforce_timeouts(self) -> None:
        if self.task_timeout is None:
            return
        now = time.monotonic()
        for s in self._slots:
            if s.item is not None and not s.killed_for and now - s.started > self.task_timeout:
                s.killed_for = timeout_reason(self.task_timeout)
                log.warning("sample %d: killing its worker (%s)", s.item.index, s.killed_for)
                s.proc.kill()

    def _died(self, i: int, retries: Retries) -> Died | None:
        """Replace dead worker ``i``; its sample runs again, or is given up (returned)."""
        s = self._slots[i]
        s.proc.join(timeout=5)
        code = s.proc.exitcode
        reason = s.killed_for or (f"its worker died (signal {-code})" if code is not None
                                  and code < 0 else f"its worker died (exit code {code})")
        if not s.ready and s.item is None and not s.killed_for:
            raise InputError(f"a worker process failed to start ({reason[4:]})")
        s.conn.close()
        self._slots[i] = self._spawn()
        return None if s.item is None else retries.lost(s.item, reason)

    def close(self) -> None:
        """Stop every worker (a graceful end first, then kill)."""
        _stop(self._slots, grace=2.0)
        self._slots = []


def _stop(slots: list[_Slot], grace: float) -> None:
    """End the workers of ``slots``: asked to stop, given ``grace`` seconds in all, then
    killed."""
    for s in slots:
        try:
            s.conn.send(None)
        except (BrokenPipeError, OSError):
            pass
    deadline = time.monotonic() + grace
    for s in slots:
        s.proc.join(timeout=max(0.0, deadline - time.monotonic()))
        if s.proc.is_alive():
            s.proc.kill()
            s.proc.join(timeout=2)
        s.conn.close()


class LocalStart:
    """``--jobs N`` workers started before the driver loads the model (the command line's
    ``with`` block): they import the engines and load the model alongside it.
    :meth:`ready` gives the pool, :meth:`close` stops the workers."""

    def __init__(self, source: ModelSource, jobs: int, threads: int = 1) -> None:
        self.pool = LocalPool(source, jobs, threads).start()

    def ready(self) -> LocalPool:
        return self.pool

    def close(self) -> None:
        self.pool.close()
