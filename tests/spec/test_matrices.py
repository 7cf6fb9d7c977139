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
