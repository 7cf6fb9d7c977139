"""CLEVER: analytic answers on linear and smooth models, the Weibull fit against scipy,
the sampler's ball, seeding, the attack flag, bad input and the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.optimize
import scipy.stats
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.nets import relu_network
from verinet import examples
from verinet.certify.result import SampleReport, SampleStatus
from verinet.cli import main
from verinet.estimates.clever import (
    CleverOptions,
    _Sampler,
    check_against_attack,
    check_sample_report,
    clever,
    clever_scores,
)
from verinet.estimates.common import DUAL, parse_norm
from verinet.estimates.weibull import (
    ORIGINAL_C_INIT,
    _ks_pvalues,
    _start,
    fit_reverse_weibull,
    nelder_mead,
    weibull_nnlf,
)
from verinet.ir import ops as O
from verinet.ir.graph import Network, Node
from verinet.types import Guarantee, InputError, Sandwich

NORMS = (1.0, 2.0, math.inf)
SMALL = CleverOptions(nb_batches=8, batch_size=16, radius=50.0)


def linear_net(W: np.ndarray, b: np.ndarray) -> Network:
    return relu_network([(W, b)], "linear")


def tanh_net(w: np.ndarray) -> Network:
    """``f = (tanh(w.x), -tanh(w.x))``: ``g = f_0 - f_1 = 2 tanh(w.x)``, whose gradient
    norm peaks (``2 ||w||_q``) on the hyperplane ``w.x = 0``."""
    n = w.size
    return Network("x", (1, n), (
        Node("h", O.Linear(w[None, :], np.zeros(1)), ("x",), (1, 1)),
        Node("t", O.Tanh(), ("h",), (1, 1)),
        Node("y", O.Linear(np.array([[1.0], [-1.0]]), np.zeros(2)), ("t",), (1, 2)),
    ), "y")


# ----------------------------------------------------------------------------- analytic


@pytest.mark.parametrize("targeted", [False, True], ids=["untargeted", "targeted"])
@pytest.mark.parametrize("p", NORMS, ids=repr)
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31), m=st.integers(2, 5), n=st.integers(1, 6))
def test_linear_model_is_margin_over_dual_norm(seed: int, m: int, n: int, p: float,
                                               targeted: bool) -> None:
    rng = np.random.default_rng(seed)
    W, b = rng.normal(size=(m, n)), rng.normal(size=m)
    x0 = rng.uniform(0.05, 0.95, size=n)
    net = linear_net(W, b)
    y = W @ x0 + b
    c = int(np.argmax(y))
    others = [j for j in range(m) if j != c]
    target = int(rng.choice(others)) if targeted else None
    js = [target] if targeted else others
    expected = [min((y[c] - y[j]) / np.linalg.norm(W[c] - W[j], ord=DUAL[p]), 50.0)
                for j in js]
    r = clever(net, x0, norm=p, target=target, options=SMALL, rng=np.random.default_rng(1))
    assert r.guarantee is Guarantee.ESTIMATE and r.label == c == r.predicted
    assert [t.target for t in r.targets] == js
    np.testing.assert_allclose([t.score for t in r.targets], expected, rtol=1e-5)
    assert r.score == pytest.approx(min(expected), rel=1e-5)
    assert r.target == js[int(np.argmin(expected))]


@pytest.mark.parametrize("p", NORMS, ids=repr)
def test_smooth_model_recovers_the_analytic_distance(p: float) -> None:
    """A genuine reverse-Weibull case: batch maxima approach ``2 ||w||_q`` from below."""
    rng = np.random.default_rng(3)
    w = rng.normal(size=4) * 40
    s = 0.3  # w.x0 = s: the boundary w.x = 0 lies at distance s / ||w||_q
    x0 = np.full(4, 0.5)
    x0 = x0 + (s - w @ x0) * w / (w @ w)
    q = DUAL[p]
    r = clever(tanh_net(w), x0, norm=p, options=CleverOptions(
        nb_batches=100, batch_size=128, radius=0.3), rng=np.random.default_rng(0))
    (t,) = r.targets
    assert not t.fit.fallback and t.fit.ks_pvalue > 0.01
    assert t.lipschitz == pytest.approx(2 * np.linalg.norm(w, ord=q), rel=1e-2)
    assert r.score == pytest.approx(math.tanh(s) / np.linalg.norm(w, ord=q), rel=1e-2)


def test_capped_at_radius_and_misclassified_is_zero() -> None:
    W, b = np.array([[1.0, 0.0], [0.0, 1.0]]), np.zeros(2)
    net = linear_net(W, b)
    x0 = np.array([0.9, 0.1])  # class 0 with margin 0.8; distance 0.4 (L-inf)
    r = clever(net, x0, norm="inf", options=CleverOptions(nb_batches=4, batch_size=8,
                                                          radius=0.1))
    assert r.score == 0.1 and r.capped
    wrong = clever(net, x0, label=1, norm="inf", options=SMALL)
    assert wrong.misclassified and wrong.score == 0.0


def test_softmax_is_stripped() -> None:
    rng = np.random.default_rng(0)
    W, b = rng.normal(size=(3, 4)), rng.normal(size=3)
    net = linear_net(W, b)
    soft = Network("x", (1, 4), net.nodes + (Node("p", O.Softmax(1), ("fc0",), (1, 3)),), "p")
    x0 = rng.uniform(size=4)
    a = clever(net, x0, norm=2, options=SMALL)
    s = clever(soft, x0, norm=2, options=SMALL)
    assert a.score == pytest.approx(s.score, rel=1e-6)


# ----------------------------------------------------------------------------- targets


def test_target_kinds_pick_the_documented_class() -> None:
    W, b = np.eye(4), np.array([0.0, 0.3, 0.1, -0.2])
    net = linear_net(W, b)
    x0 = np.array([0.9, 0.2, 0.2, 0.2])  # logits 0.9, 0.5, 0.3, 0.0
    top2 = clever(net, x0, norm=2, target="top2", options=SMALL)
    least = clever(net, x0, norm=2, target="least", options=SMALL)
    rand = clever(net, x0, norm=2, target="random", options=SMALL)
    assert (top2.target, least.target) == (1, 3) and rand.target in (1, 2, 3)
    with pytest.raises(InputError, match="own class"):
        clever(net, x0, norm=2, target=0, options=SMALL)


# ----------------------------------------------------------------------------- fit


def _scipy_fit(data: np.ndarray, c: float, reg: float) -> tuple[float, ...]:
    def opt(func, x0, args=(), disp=0):  # the original's fmin_with_reg
        return scipy.optimize.fmin(lambda t, x: func(t, x) + reg * t[2] ** 2, x0, args,
                                   disp=disp)

    return tuple(scipy.stats.weibull_min.fit(data, c, optimizer=opt))


@pytest.mark.parametrize("reg", [0.0, 0.01])
def test_batched_nelder_mead_equals_scipy_fit(reg: float) -> None:
    rows, inits, ref = [], [], []
    for seed in range(6):
        b = 10 - scipy.stats.weibull_min.rvs(0.5 + seed, size=40, random_state=seed)
        r = (b.max() - b) / (b.max() - b.min())
        for c in ORIGINAL_C_INIT:
            rows.append(r)
            inits.append(c)
            ref.append(_scipy_fit(r, c, reg))
    data = np.array(rows)
    got = nelder_mead(lambda t, i: weibull_nnlf(t, data[i], reg), _start(data, np.array(inits)))
    np.testing.assert_allclose(got, np.array(ref), rtol=1e-7, atol=1e-9)


def test_batched_nelder_mead_equals_fmin_at_its_budget() -> None:
    """10-D Rosenbrock: most runs stop at the 2000-call budget (mid-iteration)."""
    starts = np.random.default_rng(1).normal(size=(3, 10)) * 3
    got = nelder_mead(lambda t, i: scipy.optimize.rosen(t.T), starts)
    for s, g in zip(starts, got, strict=True):
        x, _, _, calls, flag = scipy.optimize.fmin(scipy.optimize.rosen, s, disp=0,
                                                   full_output=1)
        np.testing.assert_array_equal(g, x)
    assert flag == 1 and calls == 2000  # the last start ran out of budget


def test_ks_pvalues_equal_scipy() -> None:
    x = -(5 - scipy.stats.weibull_min.rvs(2, size=(3, 30), random_state=1))
    theta = np.array([[2.0, -5.2, 1.0], [1.5, -5.0, 0.8], [3.0, -6.0, 1.5]])
    want = [scipy.stats.kstest(x[i], "weibull_min", args=tuple(theta[i])).pvalue
            for i in range(3)]
    np.testing.assert_allclose(_ks_pvalues(x, theta), want, rtol=1e-10)


def test_fit_recovers_a_known_location() -> None:
    b = 7.0 - scipy.stats.weibull_min.rvs(3.0, scale=0.5, size=400, random_state=5)
    fit = fit_reverse_weibull(b)
    assert not fit.fallback and fit.ks_pvalue > 0.05
    assert b.max() <= fit.location == pytest.approx(7.0, rel=0.02)


def test_fit_falls_back_to_the_max_without_spread() -> None:
    fit = fit_reverse_weibull(np.full(20, 3.5))
    assert fit.fallback and fit.location == 3.5 and math.isnan(fit.shape)
    with pytest.raises(InputError,
                       match=r"batch maxima must be a \(K, Nb\) array of finite numbers"):
        fit_reverse_weibull(np.array([1.0, np.nan]))


# ----------------------------------------------------------------------------- sampling


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), p=st.sampled_from(NORMS), n=st.integers(1, 8),
       radius=st.floats(0.01, 3.0))
def test_points_lie_in_the_ball_and_the_domain(seed: int, p: float, n: int,
                                               radius: float) -> None:
    rng = np.random.default_rng(seed)
    x0 = rng.uniform(size=n)
    net = linear_net(np.ones((2, n)), np.zeros(2))
    s = _Sampler(net_module(net), x0, np.zeros(n), np.ones(n), p, radius, "cpu",
                 torch.float64, rng)
    pts = s.points(200).numpy()
    assert (pts >= 0).all() and (pts <= 1).all()
    assert (np.linalg.norm(pts - x0, ord=p, axis=1) <= radius * (1 + 1e-9)).all()


def net_module(net: Network) -> torch.nn.Module:
    from verinet.ir.torch import torch_network

    return torch_network(net, torch.float64)


@pytest.mark.parametrize("p", NORMS, ids=repr)
def test_points_are_uniform_in_the_ball(p: float) -> None:
    """Uniform in a ball of dimension n: ``(||d|| / R)^n`` is uniform on [0, 1]."""
    n = 3
    net = linear_net(np.ones((2, n)), np.zeros(2))
    s = _Sampler(net_module(net), np.zeros(n), np.full(n, -9.0), np.full(n, 9.0), p, 2.0,
                 "cpu", torch.float64, np.random.default_rng(0))
    u = (np.linalg.norm(s.points(20000).numpy(), ord=p, axis=1) / 2.0) ** n
    assert scipy.stats.kstest(u, "uniform").pvalue > 1e-3


# ----------------------------------------------------------------------------- seeding


def _small_relu() -> Network:
    rng = np.random.default_rng(7)
    return relu_network([(rng.normal(size=(8, 5)), rng.normal(size=8)),
                         (rng.normal(size=(3, 8)), rng.normal(size=3))])


def _small_tanh() -> Network:
    rng = np.random.default_rng(7)
    return Network("x", (1, 5), (
        Node("h", O.Linear(rng.normal(size=(8, 5)) * 3, rng.normal(size=8)), ("x",), (1, 8)),
        Node("t", O.Tanh(), ("h",), (1, 8)),
        Node("y", O.Linear(rng.normal(size=(3, 8)), rng.normal(size=3)), ("t",), (1, 3)),
    ), "y")


def test_seeded_and_reproducible() -> None:
    net = _small_tanh()  # smooth: batch maxima differ between seeds
    x = np.random.default_rng(1).uniform(size=(3, 5))
    opts = CleverOptions(nb_batches=10, batch_size=16, radius=0.5)
    a = clever_scores(net, x, norm=2, options=opts, rng=np.random.default_rng(4))
    b = clever_scores(net, x, norm=2, options=opts, rng=np.random.default_rng(4))
    c = clever_scores(net, x, norm=2, options=opts, rng=np.random.default_rng(5))
    assert [r.as_dict() | {"seconds": 0} for r in a] == [r.as_dict() | {"seconds": 0} for r in b]
    assert [r.targets[0].lipschitz for r in a] != [r.targets[0].lipschitz for r in c]
    # A sample's estimate depends on its position's seed, not on the other samples.
    x2 = x.copy()
    x2[1] = 0.5
    d = clever_scores(net, x2, norm=2, options=opts, rng=np.random.default_rng(4))
    assert d[0].score == a[0].score and d[2].score == a[2].score


def test_pool_factor_is_arts_scheme() -> None:
    net = _small_relu()
    x = np.random.default_rng(1).uniform(size=5)
    r = clever(net, x, norm=1, options=CleverOptions(nb_batches=30, batch_size=10,
                                                     pool_factor=3, radius=1.0))
    assert r.n_points == 30 and len(r.targets) == 2
    json.dumps(r.as_dict(), allow_nan=False)


# ----------------------------------------------------------------------------- flag


def test_attack_check_flags_an_estimate_above_a_witness() -> None:
    W, b = np.array([[1.0, 0.0], [0.0, 1.0]]), np.zeros(2)
    net = linear_net(W, b)
    r = clever(net, np.array([0.9, 0.1]), norm="inf", options=SMALL)  # 0.4
    assert check_against_attack(r, 0.3).exceeds and "exceeds" in check_against_attack(
        r, 0.3).message
    assert not check_against_attack(r, 0.45).exceeds
    assert not check_against_attack(r, None).exceeds
    r2 = clever(net, np.array([0.9, 0.1]), norm=2, options=SMALL)  # 0.8 / sqrt(2)
    assert check_against_attack(r2, 0.4).attack_bound == pytest.approx(0.4 * math.sqrt(2))
    report = SampleReport(0, 0, 0, SampleStatus.NOT_ASKED,
                          radius=Sandwich(0.2, 0.3, "crown", "pgd"))
    assert check_sample_report(r, report).exceeds
    with pytest.raises(InputError, match="sample 3"):
        check_sample_report(r, SampleReport(3, 0, 0, SampleStatus.NOT_ASKED))


@pytest.mark.slow
def test_next_to_a_certify_sandwich() -> None:
    """The integration the certify report will use: one CLEVER result per SampleReport."""
    from verinet import api

    model = api.load_model(examples.model_path())
    data = np.load(examples.data_path())
    x, y = data["x"][:2], data["y"][:2]
    report = api.certify(model, x, y, radius=True, timeout=5, milp=False)
    results = clever_scores(model.network, x, y, norm="inf",
                            options=CleverOptions(nb_batches=50, batch_size=128))
    for r, s in zip(results, report.samples, strict=True):
        check = check_sample_report(r, s)
        assert check.clever == r.score and check.attack_bound == s.radius.upper
        assert check.exceeds == (r.score > s.radius.upper)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("norm", [3, 0, "l3", None, True, float("nan")])
def test_bad_norm(norm: object) -> None:
    with pytest.raises(InputError, match="norm must be 1, 2 or inf"):
        parse_norm(norm)


@pytest.mark.parametrize("kwargs, match", [
    ({"nb_batches": 0}, "nb_batches"), ({"batch_size": -3}, "batch_size"),
    ({"batch_size": 2.5}, "batch_size"), ({"pool_factor": 0}, "pool_factor"),
    ({"radius": 0.0}, "radius"), ({"radius": float("inf")}, "radius"),
    ({"c_init": ()}, "c_init"), ({"c_init": (1.0, -2.0)}, "c_init"),
    ({"shape_reg": -1.0}, "shape_reg"), ({"min_pvalue": 2.0}, "min_pvalue"),
    ({"chunk": -1}, "chunk"),
], ids=repr)
def test_bad_options(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InputError, match=match) as e:
        CleverOptions(**kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("call, match", [
    (lambda n: clever_scores(n, np.zeros((2, 3)), norm=2), "expected"),
    (lambda n: clever_scores(n, np.full(5, np.nan), norm=2), "NaN"),
    (lambda n: clever_scores(n, np.zeros((2, 5)), np.array([0, 9]), norm=2), "labels"),
    (lambda n: clever_scores(n, np.zeros((2, 5)), np.array([0.5, 1]), norm=2), "integers"),
    (lambda n: clever_scores(n, np.full(5, 2.0), norm=2), "outside the input domain"),
    (lambda n: clever_scores(n, np.zeros(5), norm=2, target=7), "target"),
    (lambda n: clever_scores(n, np.zeros(5), norm=2, target="top3"), "target"),
    (lambda n: clever_scores(n, np.zeros(5), norm=4), "norm"),
], ids=["shape", "nan", "label-range", "label-type", "domain", "target-range",
        "target-kind", "norm"])
def test_bad_input_is_one_line(call, match: str) -> None:  # noqa: ANN001
    with pytest.raises(InputError, match=match) as e:
        call(_small_relu())
    assert "\n" not in str(e.value)


# ----------------------------------------------------------------------------- CLI


def test_cli_on_the_bundled_example(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "c.json"
    rc = main(["clever", "--samples", "2", "--batches", "10", "--batch-size", "32",
               "--norm", "2", "--radius", "0.5", "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "not a bound" in text and "2 samples" in text
    d = json.loads(out.read_text())
    assert d["guarantee"] == "estimate" and d["norm"] == "2" and len(d["samples"]) == 2
    assert all(0 < s["score"] <= 0.5 for s in d["samples"])
    rc = main(["clever", str(examples.model_path()), "--data", str(examples.data_path()),
               "--start", "5", "--samples", "1", "--batches", "5", "--batch-size", "8",
               "--target", "top2"])
    assert rc == 0 and "     5" in capsys.readouterr().out


@pytest.mark.parametrize("argv, match", [
    (["clever", "--batches", "0"], "nb_batches"),
    (["clever", "--radius", "-1"], "radius"),
    (["clever", "--pool-factor", "0"], "pool_factor"),
    (["clever", "--target", "12", "--samples", "1"], "target"),
    (["clever", "--data", "x.npz"], "without a model"),
], ids=repr)
def test_cli_bad_input(argv: list[str], match: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = [e for e in capsys.readouterr().err.strip().splitlines()
           if not e.startswith("WARNING")]
    assert len(err) == 1 and err[0].startswith("verinet: error:") and match in err[0]
