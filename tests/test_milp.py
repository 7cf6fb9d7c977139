"""MILP verification: backends, encoding, bound tightening, term checks vs a brute-force oracle."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.nets import random_layers, relu_network
from tests.oracle import (
    exact_min_violation,
    exact_output_range,
    exact_preactivation_range,
    exact_radius,
)
from verinet.bounds.interval import LayerBounds, interval_bounds
from verinet.ir.chain import Activation, Affine, Chain, to_chain
from verinet.milp.backend import MilpBackend, SolverStatus, make_backend
from verinet.milp.certify import safe_lower_bound
from verinet.milp.encode import encode_chain
from verinet.milp.solve import milp_check_term, milp_min_margin
from verinet.milp.tighten import Tightening, tighten_bounds
from verinet.spec.property import Halfspaces
from verinet.types import Box, InputError, Status, UnsupportedModelError

BASE = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


def random_chain(rng: np.random.Generator, sizes: list[int], kind: str = "relu") -> Chain:
    layers: list[Affine | Activation] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=False)):
        layers.append(Affine(rng.normal(size=(b, a)), rng.normal(scale=0.5, size=b)))
        if i < len(sizes) - 2:
            layers.append(Activation(kind, b))
    return Chain(tuple(layers))


@st.composite
def problems(draw: st.DrawFn) -> tuple[Chain, Box, Halfspaces]:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_in = draw(st.integers(2, 4))
    hidden = draw(st.lists(st.integers(2, 6), min_size=1, max_size=2))
    n_out = draw(st.integers(1, 3))
    chain = random_chain(rng, [n_in, *hidden, n_out])
    centre = rng.uniform(-1, 1, n_in)
    radius = rng.uniform(0.05, 1.0, n_in)
    box = Box(centre - radius, centre + radius)
    m = draw(st.integers(1, 3))
    A = rng.normal(size=(m, n_out))
    ib = interval_bounds(chain, box)
    width = float(np.max(ib.output_upper - ib.output_lower)) + 1e-3
    b = A @ chain.forward(centre) + rng.normal(scale=0.5 * width, size=m)
    return chain, box, Halfspaces(A, b)


# ----------------------------------------------------------------------------- term checks


def _check_against_oracle(chain: Chain, box: Box, unsafe: Halfspaces, backend: str) -> None:
    exact, _ = exact_min_violation(chain, box, unsafe)
    out = milp_check_term(chain, box, unsafe, interval_bounds(chain, box), backend=backend,
                          time_limit=30.0)
    if exact > 1e-5:
        assert out.status is Status.VERIFIED, (exact, out)
        assert out.bound <= exact + 1e-6
    elif exact < -1e-5:
        assert out.status is Status.FALSIFIED, (exact, out)
        assert out.candidate is not None and box.contains(out.candidate)
        y = chain.forward(out.candidate)
        assert float(unsafe.violation(y)) <= 1e-6
        assert out.candidate_violation == pytest.approx(float(unsafe.violation(y)))
    else:
        assert out.status is not Status.VERIFIED or exact > 0


@settings(BASE, max_examples=40)
@given(problems())
def test_check_term_matches_oracle_highs(problem: tuple[Chain, Box, Halfspaces]) -> None:
    _check_against_oracle(*problem, backend="highs")


@settings(BASE, max_examples=8)
@given(problems())
def test_check_term_matches_oracle_pulp(problem: tuple[Chain, Box, Halfspaces]) -> None:
    _check_against_oracle(*problem, backend="pulp")


@settings(BASE, max_examples=15)
@given(problems())
def test_min_margin_is_exact(problem: tuple[Chain, Box, Halfspaces]) -> None:
    chain, box, unsafe = problem
    exact, _ = exact_min_violation(chain, box, unsafe)
    out = milp_min_margin(chain, box, unsafe, interval_bounds(chain, box))
    assert out.solver_status is SolverStatus.OPTIMAL
    assert out.bound == pytest.approx(exact, abs=1e-6)
    assert out.objective == pytest.approx(exact, abs=1e-6)
    assert out.candidate_violation == pytest.approx(exact, abs=1e-6)


@pytest.mark.parametrize("backend", ["highs", "pulp"])
def test_milp_output_range_is_exact(backend: str) -> None:
    rng = np.random.default_rng(3)
    chain = random_chain(rng, [3, 5, 4, 2])
    box = Box(np.full(3, -0.7), np.full(3, 0.6))
    ib = interval_bounds(chain, box)
    for j in range(2):
        lo, hi = exact_output_range(chain, box, j)
        e = np.eye(2)[j][None, :]
        got_lo = milp_min_margin(chain, box, Halfspaces(e, np.zeros(1)), ib, backend=backend)
        got_hi = milp_min_margin(chain, box, Halfspaces(-e, np.zeros(1)), ib, backend=backend)
        tol = 1e-6 * (1 + abs(lo) + abs(hi))
        assert got_lo.objective == pytest.approx(lo, abs=tol)
        assert -got_hi.objective == pytest.approx(hi, abs=tol)
        assert got_lo.bound <= lo + tol and -got_hi.bound >= hi - tol


def test_empty_conjunction_is_reachable() -> None:
    chain = random_chain(np.random.default_rng(0), [2, 3, 2])
    box = Box(np.array([0.0, 1.0]), np.array([1.0, 3.0]))
    out = milp_check_term(chain, box, Halfspaces(np.zeros((0, 2)), np.zeros(0)),
                          interval_bounds(chain, box))
    assert out.status is Status.FALSIFIED
    assert out.candidate is not None and np.allclose(out.candidate, [0.5, 2.0])


def test_sigmoid_chain_is_unsupported() -> None:
    chain = random_chain(np.random.default_rng(0), [2, 3, 2], kind="sigmoid")
    box = Box(np.zeros(2), np.ones(2))
    with pytest.raises(UnsupportedModelError, match="sigmoid .*MILP encoding supports ReLU only"):
        milp_check_term(chain, box, Halfspaces(np.ones((1, 2)), np.zeros(1)),
                        interval_bounds(chain, box))
    with pytest.raises(UnsupportedModelError, match="sigmoid .*MILP encoding supports ReLU only"):
        tighten_bounds(chain, box, interval_bounds(chain, box))


def test_unbounded_unstable_relu_is_rejected() -> None:
    chain = random_chain(np.random.default_rng(0), [2, 3, 2])
    box = Box(np.array([-np.inf, 0.0]), np.array([np.inf, 1.0]))
    inf = np.full(3, np.inf)
    bounds = LayerBounds((-inf, np.full(2, -np.inf)), (inf, np.full(2, np.inf)))
    with pytest.raises(InputError, match="needs finite bounds on every unstable ReLU input"):
        encode_chain(make_backend(), chain, box, bounds)
    nan = LayerBounds((np.full(3, np.nan), np.zeros(2)), (np.ones(3), np.ones(2)))
    with pytest.raises(InputError, match="layer bounds contain NaN"):
        encode_chain(make_backend(), chain, box, nan)


# ----------------------------------------------------------------------------- tightening


@settings(BASE, max_examples=15)
@given(problems(), st.sampled_from([Tightening.LP, Tightening.MILP]))
def test_tightened_bounds_are_sound(problem: tuple[Chain, Box, Halfspaces],
                                    method: Tightening) -> None:
    chain, box, _ = problem
    ib = interval_bounds(chain, box)
    tb = tighten_bounds(chain, box, ib, method=method, tighten_output=True)
    assert tb.method == method.value
    rng = np.random.default_rng(0)
    xs = rng.uniform(box.lower, box.upper, size=(500, box.dim))
    pre = chain.pre_activations(np.vstack([xs, box.lower, box.upper]))
    for k in range(len(tb.lower)):
        assert np.all(tb.lower[k] >= ib.lower[k]) and np.all(tb.upper[k] <= ib.upper[k])
        assert np.all(pre[k] >= tb.lower[k]) and np.all(pre[k] <= tb.upper[k])
        for j in range(tb.lower[k].size):
            lo, hi = exact_preactivation_range(chain, box, k, j)
            assert tb.lower[k][j] <= lo and tb.upper[k][j] >= hi
            if method is Tightening.MILP and k == len(tb.lower) - 1:  # no early stop
                assert tb.lower[k][j] == pytest.approx(lo, abs=1e-5)
                assert tb.upper[k][j] == pytest.approx(hi, abs=1e-5)


def test_lp_tightening_pulp_and_interval() -> None:
    rng = np.random.default_rng(5)
    chain = random_chain(rng, [3, 5, 5, 2])
    box = Box(np.full(3, -1.0), np.full(3, 1.0))
    ib = interval_bounds(chain, box)
    hb = tighten_bounds(chain, box, ib, Tightening.LP, tighten_output=True)
    pb = tighten_bounds(chain, box, ib, Tightening.LP, backend="pulp", tighten_output=True)
    for k in range(3):
        assert np.allclose(hb.lower[k], pb.lower[k], atol=1e-5)
        assert np.allclose(hb.upper[k], pb.upper[k], atol=1e-5)
        assert np.all(pb.lower[k] <= hb.lower[k] + 1e-6)
    assert tighten_bounds(chain, box, ib, Tightening.INTERVAL).method == "interval"


def test_tightening_time_budget_keeps_bounds() -> None:
    chain = random_chain(np.random.default_rng(1), [3, 6, 6, 2])
    box = Box(np.full(3, -1.0), np.full(3, 1.0))
    ib = interval_bounds(chain, box)
    tb = tighten_bounds(chain, box, ib, Tightening.LP, time_budget=0.0)
    for k in range(3):
        assert np.all(tb.lower[k] >= ib.lower[k]) and np.all(tb.upper[k] <= ib.upper[k])


# ----------------------------------------------------------------------------- backends


def _tiny(backend: str, rhs: float = 3.0) -> MilpBackend:
    """min -(x + y) s.t. 2x + 2y <= rhs, x, y binary."""
    be = make_backend(backend)
    v = be.add_vars([0, 0], [1, 1], integer=True)
    be.add_rows(np.array([[2.0, 2.0]]), -np.inf, rhs)
    be.set_objective(v, [-1.0, -1.0])
    return be


@pytest.mark.parametrize("backend", ["highs", "pulp"])
def test_tiny_milp_and_relaxation(backend: str) -> None:
    be = _tiny(backend)
    res = be.solve()
    assert res.status is SolverStatus.OPTIMAL
    assert res.objective == pytest.approx(-1.0) and res.best_bound == pytest.approx(-1.0)
    assert res.x is not None and res.x.sum() == pytest.approx(1.0)
    lp = be.solve(relax=True)
    assert lp.status is SolverStatus.OPTIMAL and lp.objective == pytest.approx(-1.5)
    if lp.row_duals is not None:
        assert safe_lower_bound(be.model(), lp.row_duals) == pytest.approx(-1.5, abs=1e-7)
        assert safe_lower_bound(be.model(), lp.row_duals) <= -1.5
    again = be.solve()  # back to the MILP
    assert again.objective == pytest.approx(-1.0)


@pytest.mark.parametrize("backend", ["highs", "pulp"])
def test_infeasible_milp(backend: str) -> None:
    be = make_backend(backend)
    v = be.add_vars([0, 0], [1, 1], integer=True)
    be.add_rows(sp.csr_matrix(np.array([[1.0, 1.0]])), 2.5, np.inf)
    be.set_objective(v, [1.0, 1.0])
    res = be.solve()
    assert res.status is SolverStatus.INFEASIBLE
    assert res.x is None and res.best_bound == math.inf


def _market_split(backend: str, m: int = 4, n: int = 40) -> MilpBackend:
    """A notoriously hard (Cornuejols-Dawande) feasibility MILP."""
    rng = np.random.default_rng(0)
    A = rng.integers(0, 100, size=(m, n)).astype(float)
    be = make_backend(backend)
    v = be.add_vars(np.zeros(n), np.ones(n), integer=True)
    s = be.add_vars(np.zeros(m), np.full(m, np.inf))
    rhs = np.floor(A.sum(axis=1) / 2)
    coeffs = sp.hstack([sp.csr_matrix(A), sp.eye(m)]).tocsr()
    be.add_rows(coeffs, rhs, rhs)
    be.set_objective(np.concatenate([v, s]), np.concatenate([np.zeros(n), np.ones(m)]))
    return be


def test_highs_time_limit() -> None:
    be = _market_split("highs")
    be.set_time_limit(0.2)
    res = be.solve()
    assert res.status is SolverStatus.TIME_LIMIT
    assert res.seconds < 5.0
    if res.x is not None:
        assert res.best_bound <= res.objective + 1e-9


def test_highs_early_stop() -> None:
    be = _market_split("highs")
    be.set_time_limit(20.0)
    be.set_stop(found_below=1e6)  # any incumbent will do
    res = be.solve()
    assert res.status is SolverStatus.STOPPED and res.objective <= 1e6
    be.set_stop(proved_above=-1.0)  # the bound 0 is proven at once
    res = be.solve()
    assert res.status in (SolverStatus.STOPPED, SolverStatus.OPTIMAL)
    assert res.best_bound > -1.0
    be.set_stop()
    be.set_time_limit(0.2)
    assert be.solve().status is SolverStatus.TIME_LIMIT  # the interrupt flag was reset


def test_unknown_backend() -> None:
    with pytest.raises(ValueError, match="unknown MILP backend 'gurobi'"):
        make_backend("gurobi")


@settings(BASE, max_examples=30)
@given(st.integers(0, 2**32 - 1))
def test_safe_bound_is_a_bound_for_any_multipliers(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, m = 5, 4
    be = make_backend("highs")
    v = be.add_vars(-rng.uniform(0, 2, n), rng.uniform(0, 2, n))
    be.add_rows(rng.normal(size=(m, n)), -rng.uniform(0, 1, m), np.where(
        rng.uniform(size=m) < 0.5, np.inf, rng.uniform(0, 1, m)))
    be.set_objective(v, rng.normal(size=n))
    res = be.solve()
    assert res.status is SolverStatus.OPTIMAL and res.row_duals is not None
    model = be.model()
    assert safe_lower_bound(model, res.row_duals) == pytest.approx(res.objective, abs=1e-7)
    for _ in range(5):
        y = res.row_duals + rng.normal(scale=0.5, size=m)
        assert safe_lower_bound(model, y) <= res.objective + 1e-9


def test_all_stable_chain_is_an_lp_with_certified_bound() -> None:
    rng = np.random.default_rng(11)
    chain = random_chain(rng, [3, 4, 4, 2])
    centre = rng.uniform(-1, 1, 3)
    box = Box(centre - 1e-4, centre + 1e-4)
    ib = interval_bounds(chain, box)
    assert not any(ib.unstable(k).any() for k in range(2))
    y = chain.forward(centre)
    for offset, want in ((0.01, Status.VERIFIED), (-0.01, Status.FALSIFIED)):
        unsafe = Halfspaces(np.array([[1.0, -1.0]]), np.array([y[0] - y[1] - offset]))
        out = milp_check_term(chain, box, unsafe, ib)
        assert out.status is want and out.n_binaries == 0
        exact, _ = exact_min_violation(chain, box, unsafe)
        assert out.bound <= exact


def test_lp_tightening_reuses_one_model(monkeypatch: pytest.MonkeyPatch) -> None:
    import verinet.milp.backend as backend_mod

    made: list[object] = []
    real = backend_mod.HighsBackend.__init__

    def counting_init(self: object, *args: object, **kwargs: object) -> None:
        made.append(self)
        real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(backend_mod.HighsBackend, "__init__", counting_init)
    chain = random_chain(np.random.default_rng(2), [3, 8, 8, 8, 2])
    box = Box(np.full(3, -1.0), np.full(3, 1.0))
    tighten_bounds(chain, box, interval_bounds(chain, box), Tightening.LP, tighten_output=True)
    assert len(made) == 1


@settings(BASE, max_examples=40)
@given(seed=st.integers(0, 10_000), R=st.sampled_from([0.05, 0.2, 0.6]))
def test_radius_milp_brackets_the_exact_radius(seed: int, R: float) -> None:
    """The bound is a lower bound of min(exact radius, reach of the box), and exact when
    solved to optimality: classes unreachable in the ball (often reported infeasible) count
    as the reach, not as the floor 0."""
    from verinet.bounds.crown import crown_layer_bounds
    from verinet.milp.radius import milp_radius

    rng = np.random.default_rng(seed)
    chain = to_chain(relu_network(random_layers(rng, [2, 6, 5, 3])))
    x0 = rng.uniform(0.2, 0.8, 2)
    label = int(np.argmax(chain.forward(x0[None])[0]))
    domain = Box(np.zeros(2), np.ones(2))
    box = Box(np.maximum(x0 - R, 0.0), np.minimum(x0 + R, 1.0))
    reach = float(np.max(np.maximum(box.upper - x0, x0 - box.lower)))  # the box's farthest
    truth = min(exact_radius(chain, x0, label, domain), reach)
    out = milp_radius(chain, x0, label, box, crown_layer_bounds(chain, box),
                      [j for j in range(3) if j != label], 0.0, 30.0)
    assert out.lower <= truth + 1e-7
    assert out.optimal  # tiny nets: every class solved, or proven unreachable
    assert out.lower == pytest.approx(truth, abs=1e-6)


def test_solver_banner_stays_off_stdout() -> None:
    import subprocess
    import sys

    code = ("from verinet.milp.backend import make_backend\n"
            "make_backend('highs').solve()\nprint('only this')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout == "only this\n"
