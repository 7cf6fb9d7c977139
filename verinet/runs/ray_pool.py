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
    """The actor: a :class:`SampleRunner` on the model from the object store."""

    def __init__(self, source: ModelSource, job: SampleJob, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        model = source.load()
        self.runner = SampleRunner(model.network, model.onnx_eval)
        self.job = job

    def run(self, item: Item) -> tuple[str, Any]:
        try:
            return "done", self.runner.attempt(self.job, item)
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


class RayPool:
    """Samples on Ray actors (module doc).  ``address``: :data:`LOCAL` (start a local
    cluster of ``jobs`` CPUs) or a cluster address; ``jobs`` None on a cluster: one actor
    per CPU."""

    def __init__(self, source: ModelSource, job: SampleJob, jobs: int | None,
                 threads: int = 1, task_timeout: float | None = None,
                 address: str = LOCAL) -> None:
        self.source, self.job, self.jobs, self.threads = source, job, jobs, threads
        self.task_timeout, self.address = task_timeout, address
        self.actors: list[Any] = []

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

    def run(self, items: list[Item]) -> Iterator[SampleReport | Died]:
        """Every item's report (or :class:`~verinet.runs.local.Died`), as they finish."""
        ray = import_ray()
        from ray.exceptions import RayActorError, WorkerCrashedError

        started = self._init(ray)
        try:
            n = self.jobs or max(1, int(ray.cluster_resources().get("CPU", 1)))
            n = min(n, len(items))
            model_ref = ray.put(self.source.with_content())  # once, for every actor
            actor_cls = ray.remote(num_cpus=1, max_restarts=0)(_Worker)

            def spawn() -> Any:
                return actor_cls.remote(model_ref, self.job, self.threads)

            self.actors = [spawn() for _ in range(n)]
            queue = deque(items)
            retries = Retries(queue)
            flight: dict[Any, tuple[int, Item, float]] = {}  # ref -> (actor, item, start)
            idle = list(range(n))
            killed: dict[int, str] = {}
            while queue or flight:
                while idle and queue:
                    a, item = idle.pop(), queue.popleft()
                    flight[self.actors[a].run.remote(item)] = (a, item, time.monotonic())
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
