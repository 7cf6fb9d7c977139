"""VNN-LIB final stage: check the declarations and turn the DNF into a :class:`Property`."""

from __future__ import annotations

import numpy as np

from verinet.spec.property import Halfspaces, Property, Term
from verinet.spec.vnnlib_dnf import Conj, Row, conjoin
from verinet.spec.vnnlib_semantics import Normaliser
from verinet.spec.vnnlib_syntax import Locator
from verinet.types import Box


def build_property(norm: Normaliser, n_inputs: int | None, n_outputs: int | None) -> Property:
    """The property asserted by everything ``norm`` has consumed."""
    loc = norm.loc
    nx = _count(norm.decls.inputs, "X", "input", n_inputs, loc)
    ny = _count(norm.decls.outputs, "Y", "output", n_outputs, loc)
    disjuncts = conjoin(norm.asserts, loc)
    if not disjuncts:
        raise loc.semantic_error(
            norm.asserts[0][1] if norm.asserts else loc.eof,
            "property's input set is empty (every disjunct has contradictory input bounds "
            "or a false atom)",
        )
    boxes = _Boxes(nx, norm.decls.inputs, loc, len(disjuncts))
    halfspaces: dict[tuple[Row, ...], Halfspaces] = {}
    terms: dict[tuple[int, tuple[Row, ...]], Term] = {}
    for k, conj in enumerate(disjuncts):
        box = boxes.get(conj, k)
        rows = tuple(dict.fromkeys(conj.rows))  # drop repeated rows, keep order
        if rows not in halfspaces:
            halfspaces[rows] = _halfspaces(rows, ny)
        terms.setdefault((id(box), rows), Term(box, halfspaces[rows]))
    return Property(tuple(terms.values()), nx, ny)


def _count(
    declared: dict[int, int], prefix: str, what: str, expected: int | None, loc: Locator
) -> int:
    """Number of declared variables; checks they are ``prefix_0 .. prefix_{n-1}``."""
    if not declared:
        raise loc.semantic_error(
            loc.eof, f"no {what} variables declared; expected (declare-const {prefix}_0 Real)"
        )
    n = len(declared)
    if max(declared) != n - 1:
        missing = min(set(range(n)) - declared.keys())
        after = min(i for i in declared if i > missing)
        raise loc.semantic_error(
            declared[after],
            f"{what} variables must be numbered contiguously from {prefix}_0: "
            f"{prefix}_{after} is declared but {prefix}_{missing} is not",
        )
    if expected is not None and expected != n:
        raise loc.semantic_error(
            declared[0], f"property declares {n} {what}s but the model has {expected}"
        )
    return n


class _Boxes:
    """Builds each term's box, sharing one :class:`Box` between terms with equal bounds."""

    def __init__(self, n: int, decl: dict[int, int], loc: Locator, n_terms: int) -> None:
        self.n, self.decl, self.loc, self.n_terms = n, decl, loc, n_terms
        self.by_dicts: dict[tuple[int, int], Box] = {}
        self.by_value: dict[bytes, Box] = {}

    def get(self, conj: Conj, k: int) -> Box:
        key = (id(conj.lo), id(conj.hi))  # the dicts live as long as the DNF: ids are stable
        box = self.by_dicts.get(key)
        if box is None:
            lo = self._array(conj.lo, k, "lower")
            hi = self._array(conj.hi, k, "upper")
            box = self.by_value.setdefault(lo.tobytes() + hi.tobytes(), Box(lo, hi))
            self.by_dicts[key] = box
        return box

    def _array(self, bounds: dict[int, float], k: int, side: str) -> np.ndarray:
        if len(bounds) != self.n:
            i = next(i for i in range(self.n) if i not in bounds)
            where = f" in disjunct {k + 1} of {self.n_terms}" if self.n_terms > 1 else ""
            raise self.loc.semantic_error(self.decl[i], f"input X_{i} has no {side} bound{where}")
        return np.fromiter((bounds[i] for i in range(self.n)), dtype=np.float64, count=self.n)


def _halfspaces(rows: tuple[Row, ...], n_outputs: int) -> Halfspaces:
    """The matrix form ``A y <= b`` of ``rows`` (zero rows: outputs unconstrained)."""
    A = np.zeros((len(rows), n_outputs))
    b = np.empty(len(rows))
    for r, (coeffs, rhs) in enumerate(rows):
        for j, a in coeffs:
            A[r, j] = a
        b[r] = rhs
    return Halfspaces(A, b)
