"""Central value types shared by every engine: boxes, verdicts, guarantees, errors.

Everything here is an immutable dataclass or an enum.  Arrays held by these types are
copied to read-only float64 numpy arrays on construction so a result can never be
mutated after it was checked.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np

# ----------------------------------------------------------------------------- errors


class VerinetError(Exception):
    """Base class of every error verinet raises on purpose.

    ``exit_code`` is the documented process exit code the CLI maps the error to.
    """

    exit_code = 1


class InputError(VerinetError):
    """Bad user input: missing file, wrong shape, NaN, bad option value (exit 2)."""

    exit_code = 2


class ModelError(VerinetError):
    """The ONNX model is corrupt or cannot be imported faithfully (exit 3)."""

    exit_code = 3


class UnsupportedModelError(ModelError):
    """The model uses ops or attributes verinet does not support (exit 3).

    ``unsupported`` lists every offending node as ``(op_type, node_name, reason)``.
    """

    def __init__(self, unsupported: list[tuple[str, str, str]], context: str = "") -> None:
        self.unsupported = list(unsupported)
        items = "; ".join(f"{op} '{name}' ({why})" for op, name, why in self.unsupported)
        prefix = f"{context}: " if context else ""
        super().__init__(f"{prefix}{len(self.unsupported)} unsupported node(s): {items}")


class PropertyError(VerinetError):
    """Broken or inconsistent VNN-LIB property (exit 4)."""

    exit_code = 4


class SoundnessError(VerinetError):
    """An internal consistency check failed (e.g. lower bound > upper bound).

    This is always a bug in verinet; it is never turned into a verdict (exit 70).
    """

    exit_code = 70


# ----------------------------------------------------------------------------- arrays


def frozen_array(a: object, dtype: type = np.float64) -> np.ndarray:
    """Return a read-only contiguous copy of ``a``."""
    arr = np.array(a, dtype=dtype, copy=True)
    arr.setflags(write=False)
    return arr


# ----------------------------------------------------------------------------- boxes


@dataclass(frozen=True)
class Box:
    """An axis-aligned box ``{x : lower <= x <= upper}`` over a flat input vector."""

    lower: np.ndarray
    upper: np.ndarray

    def __post_init__(self) -> None:
        lo = frozen_array(self.lower).reshape(-1)
        hi = frozen_array(self.upper).reshape(-1)
        if lo.shape != hi.shape:
            raise InputError(f"box bounds have different sizes {lo.size} and {hi.size}")
        if np.isnan(lo).any() or np.isnan(hi).any():
            raise InputError("box bounds contain NaN")
        if (lo > hi).any():
            i = int(np.argmax(lo > hi))
            raise InputError(f"empty box: lower[{i}]={lo[i]} > upper[{i}]={hi[i]}")
        object.__setattr__(self, "lower", lo)
        object.__setattr__(self, "upper", hi)

    @property
    def dim(self) -> int:
        return int(self.lower.size)

    @property
    def center(self) -> np.ndarray:
        return (self.lower + self.upper) / 2.0

    @property
    def radius(self) -> np.ndarray:
        return (self.upper - self.lower) / 2.0

    def contains(self, x: np.ndarray, tol: float = 0.0) -> bool:
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        return bool(np.all(x >= self.lower - tol) and np.all(x <= self.upper + tol))

    def clip(self, x: np.ndarray) -> np.ndarray:
        return np.clip(np.asarray(x, dtype=np.float64).reshape(-1), self.lower, self.upper)

    @staticmethod
    def linf_ball(center: np.ndarray, eps: float, lo: float | np.ndarray = 0.0,
                  hi: float | np.ndarray = 1.0) -> Box:
        """The L-inf ball of radius ``eps`` around ``center`` clipped to ``[lo, hi]``
        (scalars or per-coordinate bounds; see :func:`linf_ball_bounds`)."""
        if not np.isfinite(eps) or eps < 0:
            raise InputError(f"eps must be a finite non-negative number, got {eps}")
        c = np.asarray(center, dtype=np.float64).reshape(-1)
        return Box(*linf_ball_bounds(c, eps, lo, hi))


def linf_ball_bounds(center: np.ndarray, eps: float | np.ndarray,
                     lower: float | np.ndarray = 0.0, upper: float | np.ndarray = 1.0
                     ) -> tuple[np.ndarray, np.ndarray]:
    """The lower and upper corners of the L-inf ball of radius ``eps`` around ``center``
    intersected with the input domain ``[lower, upper]`` (scalars or per-coordinate
    arrays): ``clip(center -+ eps, lower, upper)``.

    Batched by numpy broadcasting: ``center`` is ``(..., n)``, ``eps`` a scalar or an
    array of the batch shape (one radius per ball), so a centre ``(n,)`` with radii
    ``(B,)`` gives ``B`` balls ``(B, n)``, centres ``(N, n)`` with radii ``(N,)`` one ball
    each; ``lower``/``upper`` broadcast against the result.  For a centre inside the
    domain and ``eps >= 0`` this is the exact intersection ``max(center - eps, lower)``,
    ``min(center + eps, upper)``; a centre outside the domain is clipped into it.
    Nothing is checked (callers validate ``eps`` and the centre)."""
    c = np.asarray(center, dtype=np.float64)
    e = np.asarray(eps, dtype=np.float64)
    if e.ndim:
        e = e[..., None]
    return np.clip(c - e, lower, upper), np.clip(c + e, lower, upper)


def linf_reach(center: np.ndarray, lower: float | np.ndarray,
               upper: float | np.ndarray) -> float:
    """The largest L-inf distance of a point of the box ``[lower, upper]`` from ``center``
    (flat): beyond this radius the ball around ``center`` covers the whole box."""
    c = np.asarray(center, dtype=np.float64)
    return float(np.max(np.maximum(c - lower, upper - c)))


# ----------------------------------------------------------------------------- verdicts


class Status(enum.Enum):
    """Verdict of a verification query about an *unsafe* set.

    VERIFIED: the unsafe set is unreachable (VNN-COMP ``unsat``).
    FALSIFIED: a confirmed witness reaches it (VNN-COMP ``sat``).
    UNKNOWN: neither could be established; see the Reason.
    """

    VERIFIED = "verified"
    FALSIFIED = "falsified"
    UNKNOWN = "unknown"


class Reason(enum.Enum):
    """Why a result is what it is (mainly why it is UNKNOWN)."""

    NONE = "none"
    PROVEN_BY_BOUNDS = "proven by sound bounds"
    PROVEN_BY_MILP = "proven by MILP"
    PROVEN_BY_BAB = "proven by branch and bound"
    WITNESS_CONFIRMED = "witness confirmed"
    TIMEOUT = "timeout"
    UNSUPPORTED = "unsupported model for complete verification"
    WITNESS_UNCONFIRMED = "candidate witness failed replay"
    INCOMPLETE = "incomplete methods were inconclusive"
    SOLVER_ERROR = "solver failure"
    ERROR = "error"  # the work itself failed (an exception, a worker that died): see message


class Guarantee(enum.Enum):
    """The kind of guarantee behind a number."""

    EXACT = "exact"          # optimal up to stated tolerances
    SOUND = "sound"          # a proven bound
    PAC = "pac"              # probably approximately correct (scenario optimisation)
    EMPIRICAL = "empirical"  # witnessed by a confirmed example (an upper bound)
    ESTIMATE = "estimate"    # heuristic, no guarantee


@dataclass(frozen=True)
class Counterexample:
    """A witness ``x`` (flat, raw input space) with the outputs it produces.

    ``y`` is the IR output (float64); ``y_onnx`` the original ONNX output when replayed there.
    ``confirmed`` is True only when ``x`` lies in the input box exactly and the property is
    violated on the IR *and* on the ONNX model.
    """

    x: np.ndarray
    y: np.ndarray
    y_onnx: np.ndarray | None = None
    term: int = -1
    margin: float = float("nan")
    confirmed: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "x", frozen_array(self.x).reshape(-1))
        object.__setattr__(self, "y", frozen_array(self.y).reshape(-1))
        if self.y_onnx is not None:
            object.__setattr__(self, "y_onnx", frozen_array(self.y_onnx).reshape(-1))


SANDWICH_TOL = 1e-6


@dataclass(frozen=True)
class Sandwich:
    """``lower <= true value <= upper`` with the guarantee and method behind each end.

    Raises ``SoundnessError`` if ``lower > upper + tol``: that is always a bug.
    """

    lower: float
    upper: float
    lower_by: str = ""
    upper_by: str = ""
    lower_guarantee: Guarantee = Guarantee.SOUND
    upper_guarantee: Guarantee = Guarantee.EMPIRICAL
    tol: float = SANDWICH_TOL

    def __post_init__(self) -> None:
        lo, hi = float(self.lower), float(self.upper)
        if np.isnan(lo) or np.isnan(hi):
            raise SoundnessError(f"sandwich end is NaN: [{lo}, {hi}]")
        if lo > hi + self.tol:
            raise SoundnessError(
                f"lower bound {lo!r} ({self.lower_by}) exceeds upper bound {hi!r} "
                f"({self.upper_by}) by {lo - hi:.3g}"
            )
        object.__setattr__(self, "lower", lo)
        object.__setattr__(self, "upper", hi)

    @property
    def gap(self) -> float:
        return self.upper - self.lower


@dataclass(frozen=True)
class Timings:
    """Seconds spent per stage, as an immutable mapping."""

    items: tuple[tuple[str, float], ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, float]:
        return dict(self.items)
