"""The graph branch and bound's options, apart from its engine so that the portfolio's
options can name them without importing the engine (torch's graph modules, the MILP
encoding and scipy.sparse: about 0.15 s of every ``verinet verify`` start on models that
never reach it, such as ACAS Xu's)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from verinet.bounds.branching import SCORES
from verinet.types import InputError

if TYPE_CHECKING:
    from verinet.bounds.graph import GraphModel

BRANCHING = (*SCORES, "fsb")


@dataclass(frozen=True)
class GraphSplitOptions:
    # Measured with the defaults below against 20 steps / 3 candidates (the chain
    # search's), graph BaB alone, one thread: oval21 cifar_base_kw img4631 proven in
    # 61 s (20 steps, 3 candidates: worst bound -0.0073 after 90 s), cifar_wide_kw img19
    # 12.5 s (19.1 s with 20 steps), ResNet-2B prop_33 8.6 s (10.4 s), marabou small
    # index 9409 21.1 s (36.3 s).  Children start from their parent's parameters, so few
    # steps per round suffice; the child estimates of 3 candidates per score cost more
    # than the whole ascent (44% of a round).
    iterations: int = 5       # Adam steps on alpha and beta per bounding
    lr_alpha: float = 0.1
    lr_beta: float = 0.05
    branching: str = "fsb"    # babsr | intercept | fsb (ReLU-like units)
    fsb_candidates: int = 1   # per score, for "fsb"

    def __post_init__(self) -> None:
        if self.branching not in BRANCHING:
            raise InputError(f"branching must be one of {BRANCHING}, got {self.branching!r}")
        if self.fsb_candidates < 1:
            raise InputError("fsb_candidates must be positive")
        if self.iterations < 0 or not (self.lr_alpha > 0 and self.lr_beta > 0):
            raise InputError("need iterations >= 0 and positive learning rates")


@dataclass(frozen=True)
class DomainAttackOptions:
    """The domain-guided attack of :mod:`verinet.verify.graph_bab.attack`.  Measured with
    graph BaB alone (5 s each, one thread) on the planted counterexamples of the first 48
    self-test instances (``benchmarks/selftest.py --instances 48 --engines relu-bab``):
    5 of 24 found without the attack, 23 with these defaults (share 0.1: 23 too).  On 8
    it missed, 16 domains x 20 steps from 0.1 found none of the 4 tried.  Its cost on a
    proof is about its share: FNN1 image 3 at eps 0.0402 (``benchmarks/bab_throughput.py``,
    run beside the code without it), the same 178,683 domains in 53.1 s against 51.0 s."""

    domains: int = 64       # the worst alive domains attacked per round (0: off)
    steps: int = 50         # signed-gradient steps per attack
    step: float = 0.3       # first step, as a share of each input's box width (then
                            # geometric down to 1e-3 of it)
    weight: float = 1.0     # of the penalty for leaving the domain's cut intervals
    share: float = 0.05     # at most this share of the search time

    def __post_init__(self) -> None:
        if self.domains < 0 or self.steps < 1 or not (0 < self.step <= 1):
            raise InputError("domain attack: need domains >= 0, steps >= 1, 0 < step <= 1")
        if self.weight < 0 or not (0 <= self.share <= 1):
            raise InputError("domain attack: need weight >= 0 and 0 <= share <= 1")


@dataclass(frozen=True)
class GraphBabOptions:
    batch: int = 256                # domains bounded per round (at most)
    split: GraphSplitOptions = GraphSplitOptions()
    root_iterations: int = 50       # alpha/beta steps for the root domains
    root_tighten: int = 20          # alpha-CROWN steps per intermediate node at the root
    max_domains: int = 200_000      # queue cap (then: unknown)
    # ... and at most this much memory for the open domains (24 bytes per domain and
    # unit, up to twice that while the pool grows: VNN-COMP sri_resnet_a idx 865, 1,400
    # units, reached 3.6 GB without a cap)
    queue_mb: int = 512
    # ... and about this much for one round's coefficient tensors (the batch shrinks to
    # fit: 64 bytes per domain, objective row and unit of the graph)
    batch_mb: int = 256
    leaf_time: float = 10.0         # seconds per exact leaf LP
    attack: DomainAttackOptions = DomainAttackOptions()  # counterexamples in the domains
    backend: str = "highs"

    def __post_init__(self) -> None:
        if min(self.batch, self.max_domains, self.queue_mb, self.batch_mb) < 1:
            raise InputError("graph BaB: batch, max_domains, queue_mb and batch_mb must be "
                             "positive")

    def batch_cap(self, gm: GraphModel, rows: int) -> int:
        """The largest batch for ``gm`` with ``rows`` objective rows per domain."""
        per = 64 * rows * sum(gm.size(n) for n in gm.order)
        return max(1, min(self.batch, self.batch_mb * 2**20 // per))

    def cap(self, units: int) -> int:
        """The queue cap for a root with ``units`` split units."""
        return max(1, min(self.max_domains, self.queue_mb * 2**20 // (24 * max(1, units))))


DEFAULT_OPTIONS = GraphBabOptions()
