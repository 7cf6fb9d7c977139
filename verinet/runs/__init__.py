"""Dataset-scale runs: one per-sample unit of work (:mod:`~verinet.runs.sample`) served by
every backend -- this process, ``--jobs N`` local workers (:mod:`~verinet.runs.local`) or
a Ray cluster (:mod:`~verinet.runs.ray_pool`) -- and the loop that feeds them, streams
records and resumes (:mod:`~verinet.runs.dataset`).  The record file format is
:mod:`verinet.report.records`.

The names below are imported on first use: importing a light submodule
(:mod:`~verinet.runs.backend`, :mod:`~verinet.runs.source`,
:mod:`~verinet.runs.ray_start`) does not import torch and the engines."""

from verinet.lazy import lazy_exports

_HOMES = {
    "Backend": "backend", "usable_cores": "backend", "ModelSource": "source",
    "certify": "dataset", "pac_certify": "dataset", "run_dataset": "dataset",
    "Item": "sample", "SampleJob": "sample", "SampleRunner": "sample",
}

__all__ = sorted(_HOMES)
__getattr__ = lazy_exports(__name__, _HOMES)
