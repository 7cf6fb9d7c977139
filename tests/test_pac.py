"""DeepPAC: exact on affine models, never unsafe below the exact radius on tiny ReLU nets,
every unsafe counterexample replays on the IR and the original ONNX model."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.nets import float32_layers, random_layers, relu_network, relu_onnx
from tests.oracle import exact_radius
from verinet.ir.chain import to_chain
from verinet.onnx_import.check import onnx_evaluator
from verinet.pac import (
    FeatureMap,
    PacOptions,
    PacProblem,
    PacVerdict,
    RadiusSearch,
    pac_check,
    pac_radius,
)
from verinet.pac.chebyshev import chebyshev_fit
from verinet.pac.learn import coarse_fit, scenario_margin
from verinet.types import Box, InputError, SoundnessError

# Small but valid for the guarantee: K3 = 113, kappa = min(14, n + 1).
SMALL = dict(epsilon=0.1, eta=0.01, k1=300, k2=400)


def _affine(seed: int, n: int, m: int):
    rng = np.random.default_rng(seed)
    layers = float32_layers(random_layers(rng, [n, m]))
    return relu_network(layers), layers, rng


def _analytic_radius(W: np.ndarray, b: np.ndarray, x0: np.ndarray, label: int) -> float:
    """Smallest r with max over the clipped ball of (w_j - w_l) x + b_j - b_l >= 0."""
    best = math.inf
    for j in range(W.shape[0]):
        if j == label:
            continue
        w, c = W[j] - W[label], b[j] - b[label]

        def top(r: float, w: np.ndarray = w, c: float = c) -> float:
            lo, hi = np.clip(x0 - r, 0, 1), np.clip(x0 + r, 0, 1)
            return float(np.maximum(w * lo, w * hi).sum() + c)

        if top(1.0) < 0:
            continue
        a, z = 0.0, 1.0
        for _ in range(100):
            mid = 0.5 * (a + z)
            a, z = (a, mid) if top(mid) >= 0 else (mid, z)
        best = min(best, z)
    return best


@pytest.mark.parametrize(("seed", "dtype", "phase1"), [
    (0, "float64", "lawson"), (1, "float64", "lstsq"), (2, "float64", "lp"),
    (0, "float32", "lawson"), (1, "float32", "lawson"), (2, "float32", "lstsq")])
def test_affine_model_is_learned_exactly(seed: int, dtype: str, phase1: str) -> None:
    net, layers, rng = _affine(seed, 5, 3)
    (W, b), = layers
    x0 = rng.uniform(0.2, 0.8, 5)
    label = int(np.argmax(net.evaluate(x0)))
    opts = PacOptions(**SMALL, dtype=dtype, phase1=phase1)
    prob = PacProblem(net, onnx_evaluator(relu_onnx(layers)), x0, label, opts,
                      FeatureMap.normalisation(0.3, 0.5, net.input_shape))
    r_star = _analytic_radius(W, b, x0, label)
    assert 0 < r_star < 1
    below = pac_check(prob, 0.9 * r_star)
    above = pac_check(prob, min(1.1 * r_star, 1.0))
    tol = 1e-9 if dtype == "float64" else 1e-5
    assert below.margin <= tol and above.margin <= tol  # the model is the network
    assert below.verdict is PacVerdict.ROBUST
    assert above.verdict is PacVerdict.UNSAFE and above.source == "vertex"
    assert above.distance <= min(1.1 * r_star, 1.0) + 1e-12
    assert above.distance >= r_star - 1e-6  # a real counterexample: beyond the radius
    # The PAC radius is the analytic radius: on the grid and refined continuously.
    grid = RadiusSearch(grid=0.01)
    rec = pac_radius(prob, grid)
    assert rec.radius == rec.grid_radius == pytest.approx(math.floor(r_star / 0.01) * 0.01)
    fine = pac_radius(prob, RadiusSearch(grid=0.01, continuous=True, tolerance=1e-6))
    assert r_star - 2e-6 <= fine.radius <= r_star + tol
    assert fine.grid_radius == rec.grid_radius and len(fine.checks) > len(rec.checks)
    assert fine.joint_eta == pytest.approx(fine.verdicts * 0.01)


def test_bracketed_search_settles_with_the_slow_fit() -> None:
    net, layers, rng = _affine(7, 4, 3)
    x0 = rng.uniform(0.3, 0.7, 4)
    label = int(np.argmax(net.evaluate(x0)))
    prob = PacProblem(net, None, x0, label, PacOptions(**SMALL, phase1="lp"),
                      FeatureMap.identity(4))
    plain = pac_radius(prob, RadiusSearch(grid=0.01))
    fast = pac_radius(prob, RadiusSearch(grid=0.01, bracket="lstsq"))
    assert fast.radius == plain.radius and fast.phase1 == "lp"
    slow = [c for c in fast.checks if c.phase1 == "lp"]
    assert 1 <= len(slow) <= 2 < len(fast.checks)
    k = round(fast.radius / 0.01)
    verdicts = {round(c.radius / 0.01): c.verdict for c in slow}
    assert verdicts.get(k, PacVerdict.ROBUST) is PacVerdict.ROBUST
    assert verdicts.get(k + 1, PacVerdict.UNSAFE) is not PacVerdict.ROBUST


@pytest.mark.parametrize(("start", "truth"), [(5, 8), (5, 3), (5, 20), (5, 0), (0, 0),
                                              (9, 9), (40, 2), (50, 50)])
def test_settle_finds_a_boundary(start: int, truth: int) -> None:
    from verinet.pac.search import _settle

    calls: list[int] = []

    def robust(k: int) -> bool:
        calls.append(k)
        return k <= truth

    lo, hi = _settle(robust, start, 50)
    assert (lo, hi) == (truth, truth + 1)
    assert len(calls) <= 9


def test_robust_everywhere_gives_the_largest_grid_radius() -> None:
    W = np.array([[1.0, 0.0], [0.0, 0.0]])
    b = np.array([2.0, 0.0])
    layers = [(W, b)]
    net = relu_network(layers)
    prob = PacProblem(net, None, np.array([0.5, 0.5]), 0, PacOptions(**SMALL),
                      FeatureMap.identity(2))
    rec = pac_radius(prob, RadiusSearch(grid=0.1))
    assert rec.radius == pytest.approx(0.5) and rec.checks[-1].verdict is PacVerdict.ROBUST


def test_problem_validation() -> None:
    net, layers, _ = _affine(0, 3, 2)
    opts = PacOptions(**SMALL)
    with pytest.raises(InputError, match="sample has 2 values"):
        PacProblem(net, None, np.zeros(2), 0, opts, FeatureMap.identity(3))
    with pytest.raises(InputError, match="PAC features have 4 inputs"):
        PacProblem(net, None, np.zeros(3), 0, opts, FeatureMap.identity(4))
    with pytest.raises(InputError, match="label 5 out of range"):
        PacProblem(net, None, np.zeros(3), 5, opts, FeatureMap.identity(3))
    single = relu_network([(np.ones((1, 3)), np.zeros(1))])
    with pytest.raises(InputError, match="at least 2 outputs"):
        PacProblem(single, None, np.zeros(3), 0, opts, FeatureMap.identity(3))
    with pytest.raises(InputError, match="grid step"):
        RadiusSearch(grid=0.0)
    with pytest.raises(InputError, match="tolerance"):
        RadiusSearch(tolerance=-1.0)


def test_chebyshev_fit_constraint_generation_is_exact() -> None:
    rng = np.random.default_rng(3)
    a = np.hstack([rng.uniform(-1, 1, (3000, 6)), np.ones((3000, 1))])
    d = a @ rng.normal(size=7) + 0.1 * np.sin(5 * a[:, 0]) + rng.uniform(-0.05, 0.05, 3000)
    c_cg, lam_cg = chebyshev_fit(a, d, 100.0)
    c_full, lam_full = chebyshev_fit(a, d, 100.0, generate=False)
    assert lam_cg == pytest.approx(lam_full, rel=1e-7, abs=1e-9)
    assert scenario_margin(a, d[:, None], c_cg[None]) == pytest.approx(lam_cg, rel=1e-7)
    # the coefficient box is respected
    c_box, lam_box = chebyshev_fit(a, 1000 * d, 1.0)
    assert np.all(np.abs(c_box) <= 1.0 + 1e-9) and lam_box > lam_cg


def test_interior_point_matches_highs() -> None:
    import torch

    from verinet.pac.chebyshev import chebyshev_ipm

    rng = np.random.default_rng(5)
    a = np.hstack([rng.uniform(-1, 1, (600, 30)), np.ones((600, 1))])
    d = np.abs(a[:, :3]).sum(1) + 0.01 * rng.normal(size=600)
    c = chebyshev_ipm(torch.tensor(a), torch.tensor(d))
    assert c is not None
    _, lam = chebyshev_fit(a, d, 100.0, generate=False)
    got = float(np.max(np.abs(a @ c.numpy() - d)))
    assert got == pytest.approx(lam, rel=1e-6)
    # Phase 1 "lp" falls back to HiGHS when the box binds, and respects it.
    coef = coarse_fit(a, 50 * d[:, None], "lp", 1.0)
    assert np.all(np.abs(coef) <= 1.0 + 1e-9)


def test_lawson_steps_approach_the_chebyshev_lp() -> None:
    rng = np.random.default_rng(4)
    x = rng.uniform(0.2, 0.3, (400, 8))  # features almost constant, as near a sample
    a = np.hstack([(x - 0.13) / 0.31, np.ones((400, 1))])
    d = np.stack([np.abs(x - 0.25).sum(1), np.maximum(x[:, 0] - x[:, 1], 0.0)], axis=1)
    lp = coarse_fit(a, d, "lp", 100.0)
    best = scenario_margin(a, d[:, :1], lp[:1])
    gaps = [scenario_margin(a, d[:, :1], coarse_fit(a, d, m, 100.0, k)[:1]) - best
            for m, k in (("lstsq", 1), ("lawson", 1), ("lawson", 100))]
    assert all(g >= -1e-9 for g in gaps)  # the LP is the Chebyshev optimum
    assert gaps[1] < gaps[0] and gaps[2] < 0.05 * best  # Lawson converges to it


# ----------------------------------------------------------------------------- tiny nets


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), n_in=st.integers(1, 3),
       hidden=st.lists(st.integers(2, 5), min_size=1, max_size=2), n_out=st.integers(2, 3),
       frac=st.floats(0.05, 2.0))
def test_never_unsafe_below_the_exact_radius(seed: int, n_in: int, hidden: list[int],
                                             n_out: int, frac: float) -> None:
    rng = np.random.default_rng(seed)
    layers = float32_layers(random_layers(rng, [n_in, *hidden, n_out]))
    net = relu_network(layers)
    onnx_eval = onnx_evaluator(relu_onnx(layers))
    x0 = rng.uniform(0.0, 1.0, n_in)
    y0 = net.evaluate(x0)
    label = int(np.argmax(y0))
    if np.sort(y0)[-2] >= y0[label]:
        return  # a tie at x0: no robust ball at all
    exact = exact_radius(to_chain(net), x0, label, Box(np.zeros(n_in), np.ones(n_in)))
    r = min(frac * (exact if math.isfinite(exact) else 0.5), 1.0)
    prob = PacProblem(net, onnx_eval, x0, label, PacOptions(**SMALL, seed=seed % 7),
                      FeatureMap.identity(n_in))
    check = pac_check(prob, r)
    if check.verdict is PacVerdict.ROBUST:
        assert check.upper < 0
    if check.verdict is not PacVerdict.UNSAFE:
        return
    assert r >= exact - 1e-9, (r, exact)  # never unsafe below the exact radius
    cex = check.counterexample
    assert cex is not None and cex.confirmed
    assert exact - 1e-9 <= check.distance <= r + 1e-12
    assert np.all(cex.x >= np.clip(x0 - r, 0, 1)) and np.all(cex.x <= np.clip(x0 + r, 0, 1))
    for y in (net.evaluate(cex.x), onnx_eval(cex.x[None])[0]):  # IR and original ONNX
        assert np.delete(y, label).max() >= y[label]


def test_check_invariants() -> None:
    from verinet.pac.result import PacCheck

    counts = PacOptions(**SMALL).counts(2)
    with pytest.raises(SoundnessError, match="confirmed counterexample iff unsafe"):
        PacCheck(0.1, PacVerdict.UNSAFE, 0.0, 1.0, 1, counts)
    with pytest.raises(SoundnessError, match="PAC-robust with U"):
        PacCheck(0.1, PacVerdict.ROBUST, 0.0, 0.5, 1, counts)


def test_scores_beyond_the_coefficient_box_are_flagged(caplog: pytest.LogCaptureFixture
                                                       ) -> None:
    """The artifact's box [-100, 100] is not scale-free: the same affine model scaled by
    1000 (scores spread like a distilled student's at T = 1) gets a clipped fit, a warning
    and a radius far too small; a wider box gives the analytic radius back."""
    rng = np.random.default_rng(4)
    W, b = (np.float32(1000) * t.astype(np.float32) for t in random_layers(rng, [5, 3])[0])
    layers = [(W.astype(np.float64), b.astype(np.float64))]
    net = relu_network(layers)
    x0 = rng.uniform(0.2, 0.8, 5)
    label = int(np.argmax(net.evaluate(x0)))
    r_star = _analytic_radius(W.astype(np.float64), b.astype(np.float64), x0, label)
    assert 0 < r_star < 1

    def radius(bound: float) -> float:
        prob = PacProblem(net, onnx_evaluator(relu_onnx(layers)), x0, label,
                          PacOptions(**SMALL, dtype="float64", coef_bound=bound),
                          FeatureMap.identity(5))
        return pac_radius(prob, RadiusSearch(grid=0.01)).radius

    with caplog.at_level("WARNING", logger="verinet.pac.learn"):
        clipped = radius(100.0)
    assert "coefficient bound" in caplog.text and clipped < 0.5 * r_star
    caplog.clear()
    with caplog.at_level("WARNING", logger="verinet.pac.learn"):
        wide = radius(1e6)
    assert "coefficient bound" not in caplog.text
    assert wide == pytest.approx(math.floor(r_star / 0.01) * 0.01)
