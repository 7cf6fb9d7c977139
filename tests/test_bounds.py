"""Soundness and consistency of interval, CROWN and alpha-CROWN bounds."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from verinet.bounds.alpha import alpha_crown_bounds
from verinet.bounds.crown import CrownResult, crown_bounds, crown_layer_bounds
from verinet.bounds.interval import interval_bounds
from verinet.bounds.linear import smooth_relaxation
from verinet.ir.chain import Activation, Affine, Chain
from verinet.types import Box, InputError

N_SAMPLES = 2000
FAST = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def make_chain(
    rng: np.random.Generator, sizes: list[int], kinds: list[str], scale: float = 1.0
) -> Chain:
    """Affine layers with N(0, scale^2) weights between the given sizes."""
    layers: list[Affine | Activation] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(Affine(rng.normal(0, scale, (b, a)), rng.normal(0, scale, b)))
        if i < len(sizes) - 2:
            layers.append(Activation(kinds[i], b))
    return Chain(tuple(layers))


def random_boxes(rng: np.random.Generator, n_boxes: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    centre = rng.normal(0, 1, (n_boxes, dim))
    rad = rng.uniform(0.0, 1.5, (n_boxes, dim)) * (rng.uniform(size=(n_boxes, 1)) ** 2)
    rad[0, 0] = 0.0  # a degenerate side
    return centre - rad, centre + rad


def sample_box(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Uniform points, all vertices (dim <= 6) and points on random faces."""
    n = lo.size
    pts = [rng.uniform(lo, hi, (N_SAMPLES, n))]
    if n <= 6:
        corners = np.array(list(itertools.product([0.0, 1.0], repeat=n)))
        pts.append(lo + corners * (hi - lo))
    face = rng.uniform(lo, hi, (200, n))
    side = rng.integers(0, 2, (200, n)).astype(bool) & (rng.uniform(size=(200, n)) < 0.5)
    pts.append(np.where(side, np.where(rng.uniform(size=(200, n)) < 0.5, lo, hi), face))
    return np.concatenate(pts)


def assert_sound(
    chain: Chain, lo: np.ndarray, hi: np.ndarray, C: np.ndarray, res: CrownResult, seed: int
) -> None:
    """Every sampled output and pre-activation lies within the bounds; the linear bounds
    hold at the samples too."""
    rng = np.random.default_rng(seed)
    for b in range(lo.shape[0]):
        x = sample_box(rng, lo[b], hi[b])
        pre = chain.pre_activations(x)
        Cb = C[b] if C.ndim == 3 else C
        y = pre[-1] @ Cb.T
        assert np.all(y >= res.lower[b]) and np.all(y <= res.upper[b])
        assert np.all(res.lower[b] <= res.upper[b])
        assert np.all(y >= x @ res.lower_coef[b].T + res.lower_offset[b])
        assert np.all(y <= x @ res.upper_coef[b].T + res.upper_offset[b])
        for z, pl, pu in zip(pre[:-1], res.pre_lower, res.pre_upper, strict=True):
            assert np.all(z >= pl[b]) and np.all(z <= pu[b])


KINDS = st.sampled_from(["relu", "sigmoid", "tanh", "mixed"])


def draw_case(seed: int, n_in: int, hidden: list[int], kind: str, with_c: bool, scale: float):
    rng = np.random.default_rng(seed)
    n_out = int(rng.integers(1, 4))
    if kind == "mixed":
        kinds = list(rng.choice(["relu", "sigmoid", "tanh"], size=len(hidden)))
    else:
        kinds = [kind] * len(hidden)
    chain = make_chain(rng, [n_in, *hidden, n_out], kinds, scale)
    lo, hi = random_boxes(rng, 3, n_in)
    C = rng.normal(0, 1, (3, 2, n_out)) if with_c else np.eye(n_out)
    return chain, lo, hi, C


@FAST
@given(
    seed=st.integers(0, 2**32 - 1),
    n_in=st.integers(2, 6),
    hidden=st.lists(st.integers(2, 16), min_size=1, max_size=3),
    kind=KINDS,
    with_c=st.booleans(),
    scale=st.sampled_from([0.3, 1.0, 3.0]),
)
def test_bounds_are_sound(
    seed: int, n_in: int, hidden: list[int], kind: str, with_c: bool, scale: float
) -> None:
    chain, lo, hi, C = draw_case(seed, n_in, hidden, kind, with_c, scale)
    crown = crown_bounds(chain, lo, hi, C, return_intermediate=True)
    assert_sound(chain, lo, hi, C, crown, seed)
    ibp = crown_bounds(chain, lo, hi, C, intermediate="interval", return_intermediate=True)
    assert_sound(chain, lo, hi, C, ibp, seed + 1)
    alpha = alpha_crown_bounds(
        chain, lo, hi, C, iterations=5, optimize="both", return_intermediate=True
    )
    assert_sound(chain, lo, hi, C, alpha, seed + 2)
    assert np.all(alpha.lower >= crown.lower - 1e-9)
    assert np.all(alpha.upper <= crown.upper + 1e-9)


@FAST
@given(
    seed=st.integers(0, 2**32 - 1),
    n_in=st.integers(2, 6),
    hidden=st.lists(st.integers(2, 16), min_size=1, max_size=3),
    kind=KINDS,
)
def test_layer_bounds_sound_and_tighter_than_interval(
    seed: int, n_in: int, hidden: list[int], kind: str
) -> None:
    chain, lo, hi, _ = draw_case(seed, n_in, hidden, kind, False, 1.0)
    box = Box(lo[1], hi[1])
    crown = crown_layer_bounds(chain, box)
    ibp = interval_bounds(chain, box)
    assert crown.method == "crown"
    pre = chain.pre_activations(sample_box(np.random.default_rng(seed), box.lower, box.upper))
    for k, z in enumerate(pre):
        assert np.all(crown.lower[k] >= ibp.lower[k]) and np.all(crown.upper[k] <= ibp.upper[k])
        assert np.all(z >= ibp.lower[k]) and np.all(z <= ibp.upper[k])
        assert np.all(z >= crown.lower[k]) and np.all(z <= crown.upper[k])


@settings(max_examples=200, deadline=None)
@given(
    kind=st.sampled_from(["sigmoid", "tanh"]),
    a=st.floats(-60, 60),
    w=st.one_of(st.just(0.0), st.floats(1e-14, 1e-6), st.floats(1e-6, 80)),
)
def test_smooth_relaxation_lines_are_sound(kind: str, a: float, w: float) -> None:
    lb = torch.tensor([a], dtype=torch.float64)
    ub = lb + w
    r = smooth_relaxation(kind, lb, ub)
    z = torch.cat([torch.linspace(float(lb), float(ub), 4001, dtype=torch.float64), lb, ub])
    f = torch.sigmoid(z) if kind == "sigmoid" else torch.tanh(z)
    assert torch.all(r.a_lo >= 0) and torch.all(r.a_up >= 0)
    assert torch.all(r.a_lo * z + r.c_lo <= f)
    assert torch.all(r.a_up * z + r.c_up >= f)


def test_batch_equals_box_by_box() -> None:
    rng = np.random.default_rng(7)
    chain = make_chain(rng, [4, 12, 12, 12, 3], ["relu", "tanh", "relu"], 0.7)
    lo, hi = random_boxes(rng, 9, 4)
    C = rng.normal(0, 1, (9, 2, 3))
    for fn in (crown_bounds, alpha_crown_bounds):
        batch = fn(chain, lo, hi, C, return_intermediate=True)  # type: ignore[operator]
        for b in range(9):
            one = fn(chain, lo[b], hi[b], C[b], return_intermediate=True)  # type: ignore[operator]
            np.testing.assert_allclose(one.lower[0], batch.lower[b], rtol=1e-9, atol=1e-9)
            np.testing.assert_allclose(one.upper[0], batch.upper[b], rtol=1e-9, atol=1e-9)
            np.testing.assert_allclose(one.lower_coef[0], batch.lower_coef[b], atol=1e-9)
            for p, q in zip(
                one.pre_lower + one.pre_upper, batch.pre_lower + batch.pre_upper, strict=True
            ):
                np.testing.assert_allclose(p[0], q[b], rtol=1e-9, atol=1e-9)


def test_alpha_never_looser_than_crown() -> None:
    rng = np.random.default_rng(3)
    for trial in range(5):
        chain = make_chain(rng, [3, 16, 16, 16, 4], ["relu"] * 3)
        lo, hi = random_boxes(rng, 16, 3)
        C = rng.normal(0, 1, (3, 4))
        crown = crown_bounds(chain, lo, hi, C)
        alpha = alpha_crown_bounds(chain, lo, hi, C, iterations=20)
        assert np.all(alpha.lower >= crown.lower - 1e-9), trial
        np.testing.assert_array_equal(alpha.upper, crown.upper)
        if trial == 0:
            assert np.mean(alpha.lower - crown.lower) > 0  # it does optimise something


def single_relu() -> Chain:
    one = Affine(np.eye(1), np.zeros(1))
    return Chain((one, Activation("relu", 1), one))


def test_single_relu_triangle() -> None:
    res = crown_bounds(single_relu(), np.array([-1.0]), np.array([2.0]))
    # upper line 2/3 (x + 1); lower line x (alpha = 1 since u > -l); clipped by IBP at 0
    np.testing.assert_allclose(res.upper_coef[0, 0], [2.0 / 3.0], rtol=1e-9)
    np.testing.assert_allclose(res.upper_offset[0], [2.0 / 3.0], atol=1e-8)
    np.testing.assert_allclose(res.lower_coef[0, 0], [1.0], rtol=1e-9)
    np.testing.assert_allclose(res.lower_offset[0], [0.0], atol=1e-8)
    np.testing.assert_allclose(res.upper, [[2.0]], rtol=1e-9)
    np.testing.assert_allclose(res.lower, [[0.0]], atol=1e-9)
    # u < -l: the lower slope is 0
    res = crown_bounds(single_relu(), np.array([-2.0]), np.array([1.0]))
    np.testing.assert_allclose(res.lower_coef[0, 0], [0.0])
    np.testing.assert_allclose(res.upper_coef[0, 0], [1.0 / 3.0], rtol=1e-9)


def test_linear_and_stable_networks_are_exact() -> None:
    rng = np.random.default_rng(1)
    W, b = rng.normal(0, 1, (3, 4)), rng.normal(0, 1, 3)
    lo, hi = random_boxes(rng, 5, 4)
    res = crown_bounds(Chain((Affine(W, b),)), lo, hi)
    mid, rad = (lo + hi) / 2, (hi - lo) / 2
    np.testing.assert_allclose(res.lower, mid @ W.T - rad @ np.abs(W).T + b, atol=1e-9)
    np.testing.assert_allclose(res.upper, mid @ W.T + rad @ np.abs(W).T + b, atol=1e-9)
    # positive weights on a positive box: every ReLU is active, the net is linear there
    W1, W2 = np.abs(rng.normal(0, 1, (5, 4))), rng.normal(0, 1, (2, 5))
    chain = Chain((Affine(W1, np.ones(5)), Activation("relu", 5), Affine(W2, np.zeros(2))))
    lo, hi = np.abs(lo), np.abs(lo) + 0.5
    res = crown_bounds(chain, lo, hi)
    M = W2 @ W1
    mid, rad = (lo + hi) / 2, (hi - lo) / 2
    want = mid @ M.T - rad @ np.abs(M).T + W2 @ np.ones(5)
    np.testing.assert_allclose(res.lower, want, atol=1e-9)


def test_crown_tighter_than_interval_on_deep_net() -> None:
    rng = np.random.default_rng(5)
    chain = make_chain(rng, [5, 50, 50, 50, 50, 5], ["relu"] * 4, 1 / np.sqrt(20))
    box = Box(np.full(5, -0.1), np.full(5, 0.1))
    crown, ibp = crown_layer_bounds(chain, box), interval_bounds(chain, box)
    w_crown = crown.output_upper - crown.output_lower
    w_ibp = ibp.output_upper - ibp.output_lower
    assert np.all(w_crown <= w_ibp) and np.mean(w_crown) < 0.5 * np.mean(w_ibp)


def test_prior_is_intersected() -> None:
    rng = np.random.default_rng(11)
    chain = make_chain(rng, [3, 10, 10, 2], ["relu", "relu"], 1.0)
    lo, hi = random_boxes(rng, 4, 3)
    parent = crown_bounds(chain, lo, hi, return_intermediate=True)
    child_hi = (lo + hi) / 2  # lower halves: the parent's bounds stay sound
    prior = list(zip(parent.pre_lower, parent.pre_upper, strict=True))
    res = crown_bounds(chain, lo, child_hi, prior=prior, return_intermediate=True)
    assert_sound(chain, lo, child_hi, np.eye(2), res, 0)
    bounds = (parent.pre_lower, parent.pre_upper, res.pre_lower, res.pre_upper)
    for pl, pu, lb, ub in zip(*bounds, strict=True):
        assert np.all(lb >= pl) and np.all(ub <= pu)


def test_bad_inputs_raise() -> None:
    chain = single_relu()
    with pytest.raises(InputError, match=r"boxes \(1, 2\)/\(1, 2\) do not match 1 inputs"):
        crown_bounds(chain, np.zeros(2), np.ones(2))
    with pytest.raises(InputError, match="empty box: lower > upper"):
        crown_bounds(chain, np.ones(1), np.zeros(1))
    with pytest.raises(InputError, match="intermediate must be 'crown' or 'interval', got 'bogus'"):
        crown_bounds(chain, np.zeros(1), np.ones(1), intermediate="bogus")
    with pytest.raises(InputError, match=r"C must be \(k, 1\) or \(1, k, 1\), got \(2, 3\)"):
        crown_bounds(chain, np.zeros(1), np.ones(1), C=np.ones((2, 3)))
    with pytest.raises(InputError, match=r"optimize must be one of \('lower', 'upper', 'both'\), "
                                         r"got 'sideways'"):
        alpha_crown_bounds(chain, np.zeros(1), np.ones(1), optimize="sideways")


def test_acas_sized_batch_runs() -> None:
    rng = np.random.default_rng(0)
    chain = make_chain(rng, [5] + [50] * 6 + [5], ["relu"] * 6, 1 / np.sqrt(50))
    centre = rng.uniform(-1, 1, (4096, 5))
    rad = rng.uniform(0.002, 0.02, (4096, 1))
    C = np.eye(5)[1:] - np.eye(5)[0]
    res = crown_bounds(chain, centre - rad, centre + rad, C)
    assert res.lower.shape == (4096, 4) and np.all(np.isfinite(res.lower))
    y = chain.forward(centre) @ C.T
    assert np.all(y >= res.lower) and np.all(y <= res.upper)
    v = res.primal_vertex(centre - rad, centre + rad)  # (B, k, n) minimisers of the bound
    assert np.all(np.abs(v - centre[:, None, :]) <= rad[:, None, :] + 1e-12)
    at_v = np.einsum("bkn,bkn->bk", res.lower_coef, v) + res.lower_offset
    assert np.all(at_v <= res.lower + 1e-9)
    fv = np.einsum("bkm,km->bk", chain.forward(v.reshape(-1, 5)).reshape(4096, 4, 5), C)
    assert np.all(fv >= res.lower)
