"""Stacked property arrays: every term's violation is the max of its stacked rows."""

from __future__ import annotations

import numpy as np

from verinet.spec.matrices import stacked_terms
from verinet.spec.property import Halfspaces, Property, Term
from verinet.types import Box


def test_stacked_rows_give_each_terms_violation() -> None:
    rng = np.random.default_rng(0)
    box_a, box_b = Box(np.zeros(2), np.ones(2)), Box(-np.ones(2), np.zeros(2))
    terms = (Term(box_a, Halfspaces(rng.normal(size=(3, 4)), rng.normal(size=3))),
             Term(box_b, Halfspaces(rng.normal(size=(1, 4)), rng.normal(size=1))),
             Term(box_a, Halfspaces(np.zeros((0, 4)), np.zeros(0))))  # every output unsafe
    prop = Property(terms, 2, 4)
    lo, hi, A, b = stacked_terms(prop)
    assert lo.shape == hi.shape == (3, 2) and A.shape == (3, 3, 4) and b.shape == (3, 3)
    np.testing.assert_array_equal(lo[1], box_b.lower)
    np.testing.assert_array_equal(hi[0], box_a.upper)
    y = rng.normal(size=(5, 4))
    for t, term in enumerate(terms):
        stacked = (y @ A[t].T - b[t]).max(axis=1)
        np.testing.assert_allclose(stacked, term.unsafe.violation(y), rtol=0, atol=1e-12)


def test_row_combinations_keep_the_violation_and_expose_contradictions() -> None:
    box = Box(np.zeros(2), np.ones(2))
    # y >= 1 and y <= 0 (as rows A y <= b): an empty unsafe set
    rows = Halfspaces(np.array([[-1.0], [1.0]]), np.array([-1.0, 0.0]))
    single = Halfspaces(np.array([[2.0]]), np.array([3.0]))
    prop = Property((Term(box, rows), Term(box, single)), 2, 1)
    _, _, A, b = stacked_terms(prop, combine=True)
    assert A.shape == (2, 5, 1)  # 2 rows + 3 mixtures; the single-row term is padded
    y = np.linspace(-3, 3, 61)[:, None]
    plain = stacked_terms(prop)
    for t in range(2):
        mixed = (y @ A[t].T - b[t]).max(axis=1)
        raw = (y @ plain[2][t].T - plain[3][t]).max(axis=1)
        assert np.allclose(mixed, raw)
    assert np.allclose(A[0, 3], 0.0) and b[0, 3] == -0.5  # the half-half mixture: 0 y >= 0.5
