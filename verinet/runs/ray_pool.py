"""``--ray [ADDRESS]``: samples on a Ray cluster (``pip install "verinet[ray]"``).

Without an address a local cluster of ``jobs`` CPUs is started for the run (and shut
down after it); with one, the run joins that cluster and uses as many workers as it has
CPUs (or ``jobs``).  The unit of work is the local backend's: one
:class:`~verinet.runs.sample.SampleJob` on one :class:`~verinet.runs.sample.Item`.

* The model goes to the object store once (the ONNX file's bytes with how to load it);
  each worker is an actor that loads and checks it once, in its constructor.
* The driver keeps one sample in flight per actor and waits on all of them.  An actor
  that dies (killed, out of memory, its node lost) costs only its sample: the actor is
  replaced, the sample is run again once, and recorded as ``error`` if it kills its
  worker a second time (:class:`~verinet.runs.local.Retries`).  A sample past the
  per-task timeout has its actor killed (the same path).
* Results come back to the driver, which alone appends to the record file: a resumed
  run works the same whatever ran the samples, and the records equal the local run's.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from verinet.certify.result import SampleReport
from verinet.runs.local import Died, Retries, timeout_reason, wait_seconds
from verinet.runs.sample import Item, SampleJob, SampleRunner
from verinet.runs.source import ModelSource
from verinet.types import InputError, SoundnessError

log = logging.getLogger(__name__)

LOCAL = "local"


class _Worker:
    """The actor: a :class:`SampleRunner` on the model from the object store (the job
    comes with each sample, from the object store too, so actors can start before it is
    known)."""

    def __init__(self, source: ModelSource, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        model = source.load()
        self.runner = SampleRunner(model.network, model.onnx_eval)

    def run(self, job: SampleJob, item: Item) -> tuple[str, Any]:
        try:
            return "done", self.runner.attempt(job, item)
        except SoundnessError as e:
            return "soundness", str(e)

    def pid(self) -> int:
        import os

        return os.getpid()


@contextmanager
def _handlers_kept() -> Iterator[None]:
    """The SIGINT/SIGTERM handlers as they were before, whatever the block installs."""
    if threading.current_thread() is not threading.main_thread():
        yield  # handlers are the main thread's alone
        return
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in saved.items():
            if h is not None:
                signal.signal(s, h)


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise InputError('--ray needs Ray: pip install "verinet[ray]"') from None
    return ray


class _ThreadWarning(logging.Filter):
    """Drops Ray's note that a connection made off the main thread sets no SIGTERM
    handler (verinet keeps its own handlers anyway)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "SIGTERM handler is not set" not in record.getMessage()


class RayStart:
    """A Ray connection begun in the background: ``ray.init`` (or joining ``address``),
    the model's bytes put in the object store and one actor per worker created, while
    the driver loads and checks the model and reads the data.  :meth:`close` kills the
    actors and shuts down a cluster this process started (the CLI's ``with`` block).

    The connecting thread lives until :meth:`close` and shuts the cluster down itself:
    Ray starts its processes with a parent-death signal, which Linux sends when the
    *thread* that spawned them ends."""

    def __init__(self, source: ModelSource, jobs: int | None, threads: int = 1,
                 address: str = LOCAL) -> None:
        self.pool = RayPool(source, None, jobs, threads, address=address)
        self.error: BaseException | None = None
        self.started = False
        self._connected = threading.Event()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._life, name="verinet-ray-start",
                                        daemon=True)
        self._thread.start()

    def _life(self) -> None:
        quiet = _ThreadWarning()
        worker_log = logging.getLogger("ray._private.worker")
        worker_log.addFilter(quiet)
        try:
            ray = import_ray()
            self.started = self.pool._init(ray)  # noqa: SLF001 -- the pool's own connection
            self.pool.spawn_actors(ray, None)
        except BaseException as e:  # noqa: BLE001 -- re-raised on the main thread by ready()
            self.error = e
            return
        finally:
            worker_log.removeFilter(quiet)
            self._connected.set()
        self._closing.wait()
        for actor in self.pool.actors:
            ray.kill(actor)
        self.pool.actors = []
        if self.started:
            ray.shutdown()

    def ready(self) -> RayPool:
        """The pool with its actors, once the connection is made (its error raised)."""
        self._connected.wait()
        if self.error is not None:
            raise self.error
        return self.pool

    def close(self) -> None:
        """Kill the actors and shut a started cluster down (waits for the thread)."""
        self._connected.wait()
        self._closing.set()
        self._thread.join()


class RayPool:
    """Samples on Ray actors (module doc).  ``address``: :data:`LOCAL` (start a local
    cluster of ``jobs`` CPUs) or a cluster address; ``jobs`` None on a cluster: one actor
    per CPU."""

    def __init__(self, source: ModelSource, job: SampleJob | None, jobs: int | None,
                 threads: int = 1, task_timeout: float | None = None,
                 address: str = LOCAL) -> None:
        self.source, self.job, self.jobs, self.threads = source, job, jobs, threads
        self.task_timeout, self.address = task_timeout, address
        self.actors: list[Any] = []
        self._spawn: Any = None

    def spawn_actors(self, ray: Any, n_items: int | None) -> None:
        """The model in the object store once, and one actor per worker (at most
        ``n_items``); their constructors load the model in the background."""
        n = self.jobs or max(1, int(ray.cluster_resources().get("CPU", 1)))
        if n_items is not None:
            n = min(n, n_items)
        model_ref = ray.put(self.source.with_content())  # once, for every actor
        actor_cls = ray.remote(num_cpus=1, max_restarts=0)(_Worker)

        def spawn() -> Any:
            return actor_cls.remote(model_ref, self.threads)

        self._spawn = spawn
        self.actors = [spawn() for _ in range(n)]

    def _init(self, ray: Any) -> bool:
        """Connect (or start a local cluster); True when this pool started it.  Ray
        installs its own SIGINT/SIGTERM handlers in the driver: the caller's come back
        right after (an interrupt stays verinet's: exit 130/143 with every finished sample
        kept)."""
        if ray.is_initialized():
            return False
        with _handlers_kept():
            return self._connect(ray)

    def _connect(self, ray: Any) -> bool:
        try:
            if self.address == LOCAL:
                from verinet.runs.dataset import usable_cores

                ray.init(num_cpus=self.jobs or usable_cores(), include_dashboard=False,
                         configure_logging=False, log_to_driver=False)
            else:
                ray.init(address=self.address, configure_logging=False,
                         log_to_driver=False)
        except Exception as e:  # noqa: BLE001 -- ConnectionError and Ray's own errors
            raise InputError(f"--ray {self.address}: cannot start or join the cluster "
                             f"({type(e).__name__}: {' '.join(str(e).split())[:200]})"
                             ) from None
        return True

    def run(self, items: list[Item], job: SampleJob | None = None,
            warm: bool = False) -> Iterator[SampleReport | Died]:
        """Every item's report (or :class:`~verinet.runs.local.Died`), as they finish.
        ``warm``: the actors exist already (:class:`RayStart`), which also owns the
        cluster; actors beyond the items' count are let go."""
        ray = import_ray()
        from ray.exceptions import RayActorError, WorkerCrashedError

        job = job if job is not None else self.job
        if job is None:
            raise ValueError("RayPool.run needs the job")
        started = False if warm else self._init(ray)
        try:
            if not warm:
                self.spawn_actors(ray, len(items))
            for extra in self.actors[len(items):]:
                ray.kill(extra)
            self.actors = self.actors[:max(1, len(items))]
            n = len(self.actors)
            spawn = self._spawn
            job_ref = ray.put(job)
            queue = deque(items)
            retries = Retries(queue)
            flight: dict[Any, tuple[int, Item, float]] = {}  # ref -> (actor, item, start)
            idle = list(range(n))
            killed: dict[int, str] = {}
            while queue or flight:
                while idle and queue:
                    a, item = idle.pop(), queue.popleft()
                    flight[self.actors[a].run.remote(job_ref, item)] = (a, item,
                                                                         time.monotonic())
                starts = [t for _, _, t in flight.values()]
                done, _ = ray.wait(list(flight), num_returns=1,
                                   timeout=wait_seconds(self.task_timeout, starts))
                for ref in done:
                    a, item, _t = flight.pop(ref)
                    try:
                        kind, payload = ray.get(ref)
                    except (RayActorError, WorkerCrashedError) as e:
                        reason = killed.pop(a, "") or f"its Ray worker died ({type(e).__name__})"
                        self.actors[a] = spawn()
                        idle.append(a)
                        out = retries.lost(item, reason)
                        if out is not None:
                            yield out
                        continue
                    idle.append(a)
                    if kind == "soundness":
                        raise SoundnessError(payload)
                    yield payload
                self._enforce_timeouts(ray, flight, killed)
        finally:
            for actor in self.actors:
                ray.kill(actor)
            self.actors = []
            if started:
                with _handlers_kept():
                    ray.shutdown()

    def _enforce_timeouts(self, ray: Any, flight: dict[Any, tuple[int, Item, float]],
                          killed: dict[int, str]) -> None:
        if self.task_timeout is None:
            return
        now = time.monotonic()
        for a, item, t in flight.values():
            if a not in killed and now - t > self.task_timeout:
                killed[a] = timeout_reason(self.task_timeout)
                log.warning("sample %d: killing its Ray worker (%s)", item.index, killed[a])
                ray.kill(self.actors[a])
