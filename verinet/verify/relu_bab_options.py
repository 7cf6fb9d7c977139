"""The dense-chain ReLU branch and bound's options (:mod:`verinet.verify.relu_bab`), apart
from its engine so that the portfolio's options can name them without importing the MILP
modules and scipy.sparse at every ``verinet verify`` start."""

from __future__ import annotations

from dataclasses import dataclass

from verinet.bounds.split import SplitOptions
from verinet.types import InputError


@dataclass(frozen=True)
class ReluBabOptions:
    batch: int = 128              # domains bounded per round
    split: SplitOptions = SplitOptions()
    root_iterations: int = 50     # alpha/beta steps for the root domains (few, cheap)
    root_tighten: int = 20        # alpha-CROWN steps per intermediate layer at the root
    max_domains: int = 100_000    # queue cap (then: unknown); ~14 bytes per domain and
                                  # root-unstable unit, e.g. 0.6 GB at 400 units
    leaf_unstable: int = 0        # domains with at most this many unstable ReLUs go exact
    leaf_time: float = 10.0       # seconds per exact leaf solve
    backend: str = "highs"

    def __post_init__(self) -> None:
        if self.batch < 1 or self.max_domains < 1 or self.leaf_unstable < 0:
            raise InputError("relu-bab: batch and max_domains must be positive")


DEFAULT_OPTIONS = ReluBabOptions()
