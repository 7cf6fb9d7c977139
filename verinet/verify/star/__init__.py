"""Exact star-set verification of low-dimensional ReLU chains (nnenum style).

Modules, bottom up: :mod:`~verinet.verify.star.lp` (dual-certified LPs over a star's
input polytope), :mod:`~verinet.verify.star.vertices` (bounds certified from its
vertices), :mod:`~verinet.verify.star.relax` (CROWN back-substitution onto the inputs),
:mod:`~verinet.verify.star.box` (box arithmetic), :mod:`~verinet.verify.star.state`
(options, outcome, counters, a queued star), :mod:`~verinet.verify.star.search` (the
depth-first search; its docstring states what is proven),
:mod:`~verinet.verify.star.pool` (the search on worker processes) and
:mod:`~verinet.verify.star.run` (:func:`star_verify`).
"""

from verinet.verify.star.pool import StarJob, StarPool, worker_count
from verinet.verify.star.run import star_verify
from verinet.verify.star.state import StarOptions, StarOutcome

__all__ = ["StarJob", "StarOptions", "StarOutcome", "StarPool", "star_verify", "worker_count"]
