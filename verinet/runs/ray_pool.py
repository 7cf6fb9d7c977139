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

Connecting and the actors themselves are :mod:`verinet.runs.ray_start` (light, so that
the command line can start them before it imports the engines).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

from verinet.certify.result import SampleReport
from verinet.runs.local import Died, Retries, timeout_reason, wait_seconds
from verinet.runs.ray_start import LOCAL, Actors, connect, import_ray, shutdown
from verinet.runs.sample import Item, SampleJob
from verinet.runs.source import ModelSource
from verinet.types import SoundnessError

__all__ = ["LOCAL", "RayPool"]

log = logging.getLogger(__name__)


class RayPool:
    """Samples on Ray actors (module doc).  ``address``: :data:`LOCAL` (start a local
    cluster of ``jobs`` CPUs) or a cluster address; ``jobs`` None on a cluster: one actor
    per CPU.  ``actors``: started already (by :class:`~verinet.runs.ray_start.RayStart`,
    which then owns them and the cluster); without, :meth:`run` connects, starts them,
    and ends both."""

    def __init__(self, source: ModelSource, jobs: int | None, threads: int = 1,
                 task_timeout: float | None = None, address: str = LOCAL,
                 actors: Actors | None = None) -> None:
        self.source, self.jobs, self.threads = source, jobs, threads
        self.task_timeout, self.address, self.actors = task_timeout, address, actors

    def run(self, items: list[Item], job: SampleJob) -> Iterator[SampleReport | Died]:
        """Every item's report (or :class:`~verinet.runs.local.Died`), as they finish;
        actors beyond the items' count are let go."""
        ray = import_ray()
        from ray.exceptions import RayActorError, WorkerCrashedError

        started = self.actors is None and connect(ray, self.address, self.jobs)
        try:
            if self.actors is None:
                self.actors = Actors(ray, self.source, self.jobs, self.threads, len(items))
            actors = self.actors
            actors.keep(len(items))
            n = len(actors.live)
            job_ref = ray.put(job)
            queue = deque(items)
            retries = Retries(queue)
            flight: dict[Any, tuple[int, Item, float]] = {}  # ref -> (actor, item, start)
            idle = list(range(n))
            killed: dict[int, str] = {}
            while queue or flight:
                while idle and queue:
                    a, item = idle.pop(), queue.popleft()
                    flight[actors.live[a].run.remote(job_ref, item)] = (a, item,
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
                        actors.live[a] = actors.spawn()
                        idle.append(a)
                        out = retries.lost(item, reason)
                        if out is not None:
                            yield out
                        continue
                    idle.append(a)
                    if kind == "soundness":
                        raise SoundnessError(payload)
                    yield payload
                self._enforce_timeouts(ray, actors, flight, killed)
        finally:
            if self.actors is not None:
                self.actors.kill_all()
            if started:
                shutdown(ray)

    def _enforce_timeouts(self, ray: Any, actors: Actors,
                          flight: dict[Any, tuple[int, Item, float]],
                          killed: dict[int, str]) -> None:
        if self.task_timeout is None:
            return
        now = time.monotonic()
        for a, item, t in flight.values():
            if a not in killed and now - t > self.task_timeout:
                killed[a] = timeout_reason(self.task_timeout)
                log.warning("sample %d: killing its Ray worker (%s)", item.index, killed[a])
                ray.kill(actors.live[a])
