"""Vertex sets of star polytopes and the bounds certified from them
(:mod:`verinet.verify.star.vertices`): always below the LP minimum, exact when Qhull
gives the vertices, and sound whatever the multipliers are."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from verinet.verify.star.vertices import (
    MAX_DIM,
    PolyBounds,
    Vertices,
    inner_point,
    vertex_set,
)


def _polytope(rng: np.random.Generator, d: int, m: int, fixed: bool):
    """A box (one coordinate fixed when ``fixed``) cut by ``m`` random rows that keep the
    box centre strictly inside."""
    lo, hi = -rng.random(d) - 0.1, rng.random(d) + 0.1
    if fixed:
        hi[0] = lo[0]
    centre = (lo + hi) / 2.0
    G = rng.normal(size=(m, d))
    h = G @ centre + rng.uniform(0.01, 0.6, m)
    return G, h, lo, hi, centre


def _lp_min(c, G, h, lo, hi) -> float:
    res = linprog(c, A_ub=G, b_ub=h, bounds=list(zip(lo, hi, strict=True)), method="highs")
    assert res.status == 0
    return float(res.fun)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(2, 5), st.integers(1, 14), st.booleans())
def test_bounds_are_sound_and_exact_with_vertices(seed, d, m, fixed):
    rng = np.random.default_rng(seed)
    G, h, lo, hi, centre = _polytope(rng, d, m, fixed and d > 2)
    vs = vertex_set(G, h, lo, hi, centre)
    L = rng.normal(size=(6, d))
    got = PolyBounds(vs, G, h, lo, hi).lower(L)
    for r in range(L.shape[0]):
        exact = _lp_min(L[r], G, h, lo, hi)
        assert got[r] <= exact + 1e-12
        if vs is not None:
            assert got[r] >= exact - 1e-7 * (1.0 + abs(exact))
    if vs is not None:  # every vertex lies in the polytope (up to rounding)
        assert (vs.pts @ G.T <= h + 1e-8).all()
        assert (vs.pts >= lo - 1e-9).all() and (vs.pts <= hi + 1e-9).all()


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(2, 5), st.integers(1, 10))
def test_any_multipliers_give_a_sound_bound(seed, d, m):
    """Garbage vertices and multipliers (what a Qhull failure could produce) can only
    weaken the bound."""
    rng = np.random.default_rng(seed)
    G, h, lo, hi, _ = _polytope(rng, d, m, False)
    n = int(rng.integers(1, 40))
    junk = Vertices(rng.normal(size=(n, d)) * 3.0, rng.normal(size=(n, m, d)) * 5.0)
    L = rng.normal(size=(8, d))
    got = PolyBounds(junk, G, h, lo, hi).lower(L)
    for r in range(L.shape[0]):
        assert got[r] <= _lp_min(L[r], G, h, lo, hi) + 1e-12


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(2, 5), st.integers(1, 10))
def test_inner_point_is_strictly_inside_the_child(seed, d, m):
    rng = np.random.default_rng(seed)
    G, h, lo, hi, centre = _polytope(rng, d, m, False)
    vs = vertex_set(G, h, lo, hi, centre)
    a = rng.normal(size=d)
    beta = float(a @ (lo + (hi - lo) * rng.random(d)))
    x = inner_point(None if vs is None else vs.pts, centre, a, beta)
    if x is None:
        return
    assert a @ x < beta
    assert (G @ x < h).all() and (x > lo).all() and (x < hi).all()


def test_flat_or_bad_interior_point_falls_back():
    lo, hi = np.zeros(3), np.ones(3)
    G, h = np.array([[1.0, 0.0, 0.0]]), np.array([0.5])
    assert vertex_set(G, h, lo, hi, np.array([0.5, 0.5, 0.5])) is None  # on the boundary
    assert vertex_set(G, h, lo, hi, np.array([0.9, 0.5, 0.5])) is None  # outside
    flat = vertex_set(G, h, lo, np.array([0.0, 0.0, 1.0]), np.array([0.25, 0.0, 0.5]))
    assert flat is None  # two fixed coordinates leave a segment: no Qhull in 1-D
    vs = vertex_set(G, h, lo, hi, np.array([0.25, 0.5, 0.5]))
    assert vs is not None and len(np.unique(np.round(vs.pts, 9), axis=0)) == 8


def test_too_many_free_inputs_fall_back_to_lps():
    d = MAX_DIM + 1
    lo, hi = -np.ones(d), np.ones(d)
    assert vertex_set(np.ones((1, d)), np.ones(1), lo, hi, np.zeros(d)) is None
