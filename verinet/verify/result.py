"""Typed result of a verification query."""

from __future__ import annotations

from dataclasses import dataclass, field

from verinet.types import Counterexample, Reason, SoundnessError, Status

#: The complete-search strategies of :class:`verinet.verify.portfolio.VerifyOptions`
#: (here, not in the portfolio, so that the command line lists them without importing it).
COMPLETE_CHOICES = ("auto", "milp", "input-bab", "relu-bab", "chain-bab", "star", "none")


@dataclass(frozen=True)
class TermOutcome:
    """What is known about one disjunct of the property."""

    index: int
    status: Status
    method: str
    lower_bound: float = float("nan")  # proven lower bound of the term's violation (> 0: safe)


@dataclass(frozen=True)
class VerificationResult:
    """The verdict on a property (which describes the unsafe set).

    VERIFIED means no term is reachable (VNN-COMP ``unsat``); FALSIFIED carries a
    confirmed counterexample (``sat``); UNKNOWN carries the reason.  ``stats`` holds
    per-stage seconds and counters, as an immutable tuple of pairs.
    """

    status: Status
    reason: Reason
    counterexample: Counterexample | None = None
    terms: tuple[TermOutcome, ...] = ()
    seconds: float = 0.0
    stats: tuple[tuple[str, float], ...] = field(default_factory=tuple)
    message: str = ""

    def __post_init__(self) -> None:
        if self.status is Status.FALSIFIED:
            if self.counterexample is None or not self.counterexample.confirmed:
                raise SoundnessError("a falsified verdict needs a confirmed counterexample")
        elif self.counterexample is not None and self.counterexample.confirmed:
            raise SoundnessError(f"{self.status.value} verdict with a confirmed counterexample")
        if self.status is Status.VERIFIED and any(
            t.status is not Status.VERIFIED for t in self.terms
        ):
            raise SoundnessError("verified verdict with a term that is not verified")

    @property
    def vnncomp(self) -> str:
        """The first line of a VNN-COMP result file."""
        if self.status is Status.VERIFIED:
            return "unsat"
        if self.status is Status.FALSIFIED:
            return "sat"
        return "timeout" if self.reason is Reason.TIMEOUT else "unknown"

    def stat(self, key: str, default: float = 0.0) -> float:
        return dict(self.stats).get(key, default)
