"""The light half of ``--ray``: connecting to (or starting) a cluster, the actors, and
:class:`RayStart`, which does both in the background.

Nothing here imports torch or the engines at module level, so the command line can begin
the connection before it imports them: Ray's start (about 2.5 s for a local cluster:
the GCS, the raylet and their agents) then overlaps the driver's own imports and model
loading instead of following them.  The actors import the engines themselves, in their
constructors.  The sample loop on the actors is :class:`~verinet.runs.ray_pool.RayPool`.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from verinet.runs.backend import usable_cores
from verinet.runs.source import ModelSource
from verinet.types import InputError

if TYPE_CHECKING:
    from verinet.runs.ray_pool import RayPool
    from verinet.runs.sample import Item, SampleJob

LOCAL = "local"


@contextmanager
def handlers_kept() -> Iterator[None]:
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


def connect(ray: Any, address: str, jobs: int | None) -> bool:
    """Join the cluster at ``address``, or start a local one of ``jobs`` CPUs (the usable
    cores when None) for :data:`LOCAL`; True when this call started it (False: Ray was
    connected already).  Ray installs its own SIGINT/SIGTERM handlers in the driver: the
    caller's come back right after (an interrupt stays verinet's: exit 130/143 with every
    finished sample kept)."""
    if ray.is_initialized():
        return False
    with handlers_kept():
        try:
            if address == LOCAL:
                ray.init(num_cpus=jobs or usable_cores(), include_dashboard=False,
                         configure_logging=False, log_to_driver=False)
            else:
                ray.init(address=address, configure_logging=False, log_to_driver=False)
        except Exception as e:  # noqa: BLE001 -- ConnectionError and Ray's own errors
            raise InputError(f"--ray {address}: cannot start or join the cluster "
                             f"({type(e).__name__}: {' '.join(str(e).split())[:200]})"
                             ) from None
    return True


def shutdown(ray: Any) -> None:
    """Shut down the cluster this process started (the caller's signal handlers kept)."""
    with handlers_kept():
        ray.shutdown()


class _Worker:
    """The actor: a :class:`~verinet.runs.sample.SampleRunner` on the model from the
    object store (the job comes with each sample, from the object store too, so actors can
    start before it is known).  It imports the engines itself."""

    def __init__(self, source: ModelSource, threads: int) -> None:
        import torch

        from verinet.runs.sample import SampleRunner

        torch.set_num_threads(threads)
        model = source.load()
        self.runner = SampleRunner(model.network, model.onnx_eval)

    def run(self, job: SampleJob, item: Item) -> tuple[str, Any]:
        from verinet.types import SoundnessError

        try:
            return "done", self.runner.attempt(job, item)
        except SoundnessError as e:
            return "soundness", str(e)

    def pid(self) -> int:
        import os

        return os.getpid()


class Actors:
    """One actor per worker (``jobs``, or one per cluster CPU when None; at most
    ``n_items``) on the model, which goes to the object store once.  Their constructors
    load the model in the background.  :meth:`spawn` makes a replacement."""

    def __init__(self, ray: Any, source: ModelSource, jobs: int | None, threads: int,
                 n_items: int | None = None) -> None:
        n = jobs or max(1, int(ray.cluster_resources().get("CPU", 1)))
        if n_items is not None:
            n = min(n, n_items)
        self._ray, self._threads = ray, threads
        self._model = ray.put(source.with_content())  # once, for every actor
        self._cls = ray.remote(num_cpus=1, max_restarts=0)(_Worker)
        self.live: list[Any] = [self.spawn() for _ in range(n)]

    def spawn(self) -> Any:
        return self._cls.remote(self._model, self._threads)

    def keep(self, n: int) -> None:
        """Let every actor beyond the first ``n`` go (at least one stays)."""
        for extra in self.live[max(1, n):]:
            self._ray.kill(extra)
        del self.live[max(1, n):]

    def kill_all(self) -> None:
        for actor in self.live:
            self._ray.kill(actor)
        self.live = []


class _ThreadWarning(logging.Filter):
    """Drops Ray's note that a connection made off the main thread sets no SIGTERM
    handler (verinet keeps its own handlers anyway)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "SIGTERM handler is not set" not in record.getMessage()


class RayStart:
    """A Ray connection begun in the background: :func:`connect`, the model's bytes put in
    the object store and one actor per worker created (:class:`Actors`), while the driver
    imports the engines, loads and checks the model and reads the data.  :meth:`close`
    kills the actors and shuts down a cluster this process started (the CLI's ``with``
    block).

    The connecting thread lives until :meth:`close` and shuts the cluster down itself:
    Ray starts its processes with a parent-death signal, which Linux sends when the
    *thread* that spawned them ends."""

    def __init__(self, source: ModelSource, jobs: int | None, threads: int = 1,
                 address: str = LOCAL) -> None:
        self.source, self.jobs, self.threads, self.address = source, jobs, threads, address
        self.actors: Actors | None = None
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
            self.started = connect(ray, self.address, self.jobs)
            self.actors = Actors(ray, self.source, self.jobs, self.threads)
        except BaseException as e:  # noqa: BLE001 -- re-raised on the main thread by ready()
            self.error = e
            return
        finally:
            worker_log.removeFilter(quiet)
            self._connected.set()
        self._closing.wait()
        self.actors.kill_all()
        if self.started:
            shutdown(ray)

    def ready(self) -> RayPool:
        """The pool on the started actors, once the connection is made (its error
        raised)."""
        from verinet.runs.ray_pool import RayPool

        self._connected.wait()
        if self.error is not None:
            raise self.error
        return RayPool(self.source, self.jobs, self.threads, address=self.address,
                       actors=self.actors)

    def close(self) -> None:
        """Kill the actors and shut a started cluster down (waits for the thread)."""
        self._connected.wait()
        self._closing.set()
        self._thread.join()
