"""Test jobs for the worker pools: picklable :class:`SampleJob` subclasses whose samples
kill their own worker process (SIGKILL, as the kernel's OOM killer does) or hang."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from verinet.certify.engine import CertifyOptions
from verinet.runs.sample import Item, SampleJob, SampleRunner

FAST = CertifyOptions(eps=0.03, radius=True, timeout=60.0, attacks=("fmn",))


@dataclass(frozen=True)
class Killing(SampleJob):
    """Sample ``index`` kills its worker on its first ``times`` attempts (counted in files
    under ``marks``, so the count survives the worker); ``hang`` sleeps instead."""

    kills: tuple[tuple[int, int], ...] = ()
    marks: str = ""
    hang: bool = False

    def run(self, runner: SampleRunner, item: Item):  # type: ignore[override]
        times = dict(self.kills).get(item.index, 0)
        if times:
            d = Path(self.marks)
            done = len(list(d.glob(f"{item.index}-*")))
            if done < times:
                (d / f"{item.index}-{done}").write_text(str(os.getpid()))
                if self.hang:
                    time.sleep(600)
                os.kill(os.getpid(), signal.SIGKILL)
        return super().run(runner, item)


def killing(marks: Path, kills: dict[int, int], hang: bool = False) -> Killing:
    return Killing("certify", certify=FAST, kills=tuple(sorted(kills.items())),
                   marks=str(marks), hang=hang)
