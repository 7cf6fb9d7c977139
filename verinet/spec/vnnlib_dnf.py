"""Disjunctive normal form of VNN-LIB formulas.

A formula in DNF is a list of :class:`Conj` (empty list = false).  A conjunction keeps its
input constraints already merged into the tightest bound per variable (sparse dicts) and its
output constraints as rows ``coeffs . y <= rhs``.

Cost is linear in the size of the result: in ``(and ...)`` every child with a single
disjunct is merged once into a shared base, and only children with several disjuncts are
multiplied out.  Conjunctions whose input bounds contradict each other (lower > upper) are
dropped as soon as they appear.  Dicts are never mutated after construction, so they are
shared freely between conjunctions (and the resulting boxes with them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from verinet.spec.vnnlib_syntax import Locator

MAX_DNF_TERMS = 100_000
"""The largest number of disjuncts a property may expand to."""

Row = tuple[tuple[tuple[int, float], ...], float]
"""``(((j, a_j), ...), b)``: the output constraint ``sum_j a_j y_j <= b``, ``j`` ascending."""

_EMPTY: dict[int, float] = {}


class Conj(NamedTuple):
    """A conjunction: ``lo[i] <= x_i <= hi[i]`` for the listed inputs and every row."""

    lo: dict[int, float]
    hi: dict[int, float]
    rows: tuple[Row, ...]


TRUE: list[Conj] = [Conj(_EMPTY, _EMPTY, ())]
FALSE: list[Conj] = []


def bound(index: int, lower: float | None, upper: float | None) -> list[Conj]:
    """The DNF of ``lower <= x_index <= upper`` (``None`` = that side is not constrained)."""
    lo = _EMPTY if lower is None else {index: lower}
    hi = _EMPTY if upper is None else {index: upper}
    if lower is not None and upper is not None and lower > upper:
        return FALSE
    return [Conj(lo, hi, ())]


def row(r: Row) -> list[Conj]:
    """The DNF of one output constraint."""
    return [Conj(_EMPTY, _EMPTY, (r,))]


def disjoin(parts: Sequence[list[Conj]], loc: Locator, tok: int) -> list[Conj]:
    """The DNF of ``(or parts...)``; ``tok`` is blamed if it has too many disjuncts."""
    _check_size(sum(len(p) for p in parts), loc, tok)
    return [c for p in parts for c in p]


def conjoin(parts: Sequence[tuple[list[Conj], int]], loc: Locator) -> list[Conj]:
    """The DNF of ``(and parts...)``; each part comes with the token blamed on blow-up."""
    if any(not p for p, _ in parts):
        return FALSE
    base: Conj | None = _merge_many([p[0] for p, _ in parts if len(p) == 1])
    if base is None:
        return FALSE
    terms = [base]
    for p, tok in parts:
        if len(p) == 1:
            continue
        _check_size(len(terms) * len(p), loc, tok)
        terms = [m for t in terms for u in p if (m := _merge(t, u)) is not None]
        if not terms:
            return FALSE
    return terms


def _check_size(n: int, loc: Locator, tok: int) -> None:
    if n > MAX_DNF_TERMS:
        raise loc.semantic_error(
            tok,
            f"property expands to more than {MAX_DNF_TERMS} disjuncts ({n}); not supported",
        )


def _merge_many(conjs: list[Conj]) -> Conj | None:
    """Conjunction of ``conjs`` (in one pass); ``None`` if the input bounds contradict."""
    if len(conjs) == 1:
        return conjs[0]
    lo: dict[int, float] = {}
    hi: dict[int, float] = {}
    rows: list[Row] = []
    for c in conjs:
        for i, v in c.lo.items():
            if v > lo.get(i, -float("inf")):
                lo[i] = v
        for i, v in c.hi.items():
            if v < hi.get(i, float("inf")):
                hi[i] = v
        rows.extend(c.rows)
    if any(v > hi.get(i, v) for i, v in lo.items()):
        return None
    return Conj(lo or _EMPTY, hi or _EMPTY, tuple(rows))


def _merge(a: Conj, b: Conj) -> Conj | None:
    """Conjunction of two conjunctions; ``None`` if the input bounds contradict."""
    lo = _tighten(a.lo, b.lo, max)
    hi = _tighten(a.hi, b.hi, min)
    # a and b are each consistent, so only variables bounded by both can clash:
    # checking the variables of the side with fewer bounds is enough.
    if (lo is not a.lo or hi is not a.hi) and (lo is not b.lo or hi is not b.hi):
        fewer = a if len(a.lo) + len(a.hi) <= len(b.lo) + len(b.hi) else b
        for i in fewer.lo.keys() | fewer.hi.keys():
            if i in lo and i in hi and lo[i] > hi[i]:
                return None
    return Conj(lo, hi, a.rows + b.rows)


def _tighten(
    a: dict[int, float], b: dict[int, float], pick: Callable[[float, float], float]
) -> dict[int, float]:
    """``a`` and ``b`` merged keeping the tighter bound; reuses ``a`` or ``b`` when possible."""
    if not b:
        return a
    if not a:
        return b
    small, big = (a, b) if len(a) < len(b) else (b, a)
    out = dict(big)
    for i, v in small.items():
        out[i] = pick(out[i], v) if i in out else v
    return out
