"""The entry point of the star search: serial, or finished on worker processes."""

from __future__ import annotations

from verinet.ir.chain import Chain
from verinet.spec.property import Property
from verinet.verify.deadline import Deadline
from verinet.verify.star.pool import StarPool, worker_count
from verinet.verify.star.search import drive, prepare_searches
from verinet.verify.star.state import StarOptions, StarOutcome
from verinet.verify.witness import Replayer


def star_verify(
    chain: Chain,
    prop: Property,
    replayer: Replayer,
    deadline: Deadline,
    terms: list[int] | None = None,
    options: StarOptions | None = None,
) -> StarOutcome:
    """Prove the listed terms unreachable or find a confirmed counterexample
    (``options``: default :class:`StarOptions`)."""
    if options is None:
        options = StarOptions()
    searches = prepare_searches(chain, prop, replayer, deadline, terms, options)
    pool: StarPool | None = None
    try:
        def get_pool() -> StarPool:  # forked on first need, from this thread
            nonlocal pool
            if pool is None:
                pool = StarPool(searches, worker_count(options.workers))
            return pool

        return drive(searches, get_pool if worker_count(options.workers) > 1 else None)
    finally:
        if pool is not None:
            pool.close()
