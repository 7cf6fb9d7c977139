"""Properties in normal form: a disjunction of (input box, unsafe output polytope) terms.

A property describes the *unsafe* set (VNN-LIB semantics): it is violated (``sat``) iff
there exist a term ``t`` and an input ``x`` in ``t.box`` with ``t.A @ f(x) <= t.b``
(every row).  It holds (``unsat``) iff no term is reachable.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from verinet.types import Box, PropertyError, frozen_array


@dataclass(frozen=True)
class Halfspaces:
    """The polytope ``{y : A @ y <= b}`` over the flat output vector (a conjunction)."""

    A: np.ndarray
    b: np.ndarray

    def __post_init__(self) -> None:
        A = frozen_array(self.A)
        b = frozen_array(self.b).reshape(-1)
        if A.ndim != 2 or A.shape[0] != b.size:
            raise PropertyError(f"halfspaces: A has shape {A.shape}, b has {b.size} rows")
        if not (np.isfinite(A).all() and np.isfinite(b).all()):
            raise PropertyError("halfspaces contain a non-finite coefficient")
        object.__setattr__(self, "A", A)
        object.__setattr__(self, "b", b)

    @property
    def n_outputs(self) -> int:
        return int(self.A.shape[1])

    def slack(self, y: np.ndarray) -> np.ndarray:
        """``A @ y - b`` per row (batched over leading axes of ``y``); all <= 0 means inside."""
        y = np.asarray(y, dtype=np.float64)
        return y @ self.A.T - self.b

    def violation(self, y: np.ndarray) -> np.ndarray:
        """``max_i (A_i y - b_i)``: <= 0 iff ``y`` lies in the unsafe polytope."""
        s = self.slack(y)
        if s.shape[-1] == 0:  # an empty conjunction is always true
            return np.zeros(s.shape[:-1])
        return s.max(axis=-1)


@dataclass(frozen=True)
class Term:
    """One disjunct: inputs in ``box`` and outputs in ``unsafe``."""

    box: Box
    unsafe: Halfspaces


@dataclass(frozen=True)
class Property:
    """A disjunction of terms; the property is violated iff some term is reachable."""

    terms: tuple[Term, ...]
    n_inputs: int
    n_outputs: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "terms", tuple(self.terms))
        if not self.terms:
            raise PropertyError("property has no terms (the unsafe set is empty by construction)")
        for t in self.terms:
            if t.box.dim != self.n_inputs:
                raise PropertyError(f"term box has {t.box.dim} inputs, expected {self.n_inputs}")
            if t.unsafe.n_outputs != self.n_outputs:
                raise PropertyError(
                    f"term constrains {t.unsafe.n_outputs} outputs, expected {self.n_outputs}"
                )

    def violated_by(self, x: np.ndarray, y: np.ndarray, tol: float = 0.0) -> int:
        """Index of the first term whose box contains ``x`` (exactly) and whose unsafe set
        contains ``y`` (rows ``<= tol``); ``-1`` if none."""
        box, inside = None, False
        for i, t in enumerate(self.terms):
            if t.box is not box:  # terms often share one box: test it once
                box, inside = t.box, t.box.contains(x)
            if inside and float(t.unsafe.violation(y)) <= tol:
                return i
        return -1

    @staticmethod
    def robustness(box: Box, label: int, n_outputs: int) -> Property:
        """Unsafe iff some other class scores at least as high as ``label`` (ties count)."""
        if not 0 <= label < n_outputs:
            raise PropertyError(f"label {label} out of range for {n_outputs} outputs")
        terms = tuple(Term(box, h) for h in _margin_halfspaces(int(label), int(n_outputs)))
        return Property(terms, box.dim, n_outputs)


@functools.lru_cache(maxsize=256)
def _margin_halfspaces(label: int, n_outputs: int) -> tuple[Halfspaces, ...]:
    """``y_label - y_j <= 0`` for every ``j != label`` (immutable, so shared)."""
    out = []
    for j in range(n_outputs):
        if j == label:
            continue
        row = np.zeros(n_outputs)
        row[label], row[j] = 1.0, -1.0
        out.append(Halfspaces(row[None, :], np.zeros(1)))
    return tuple(out)
