"""Dataset-scale runs: one per-sample unit of work (:mod:`~verinet.runs.sample`) served by
every backend -- this process, ``--jobs N`` local workers (:mod:`~verinet.runs.local`) or
a Ray cluster (:mod:`~verinet.runs.ray_pool`) -- and the loop that feeds them, streams
records and resumes (:mod:`~verinet.runs.dataset`).  The record file format is
:mod:`verinet.report.records`."""

from verinet.runs.dataset import Backend, certify, pac_certify, run_dataset, usable_cores
from verinet.runs.sample import Item, SampleJob, SampleRunner
from verinet.runs.source import ModelSource

__all__ = ["Backend", "Item", "ModelSource", "SampleJob", "SampleRunner", "certify",
           "pac_certify", "run_dataset", "usable_cores"]
