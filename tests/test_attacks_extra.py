"""EAD (L1), L-BFGS (L2) and the Boundary Attack (L2, decision-based) in the attack API.

The contract of the final ``Attack.__call__`` (points in the L-inf ball ∩ domain, every
success misclassified by the float64 IR and by the original float32 ONNX model, equal
seeds give equal results) holds for each, with ``distance`` in the attack's own norm.
Quality: EAD's L1 distance is what it reports and beats C&W L2 in L1; L-BFGS finds the
analytic L2 minimum on a linear model; the Boundary Attack only ever shrinks its distance
and works on a label-only model that refuses gradients.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.attack_fixtures import EXTRA_ATTACKS, MODELS, Fixture, check_contract, region, samples
from tests.nets import float32_layers, random_layers, relu_network, relu_onnx
from verinet.attacks import CWL2, EAD, LBFGS, NORMS, REGISTRY, Attack, Boundary
from verinet.attacks import base as attack_base
from verinet.attacks.base import margin_loss, np_distance
from verinet.attacks.ead import shrink
from verinet.ir.graph import Network
from verinet.onnx_import.check import onnx_evaluator
from verinet.spec.property import Halfspaces, Term
from verinet.types import Box, InputError
from verinet.verify.witness import snap_into_box

ATTACKS = EXTRA_ATTACKS
HYPO = settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ----------------------------------------------------------------------------- contract


def test_registry_and_norms() -> None:
    assert {"ead", "lbfgs", "boundary"} <= set(REGISTRY)
    assert (EAD.norm, LBFGS.norm, Boundary.norm) == ("l1", "l2", "l2")
    assert all(REGISTRY[k].minimal for k in ("ead", "lbfgs", "boundary"))
    assert all(cls.norm in NORMS for cls in REGISTRY.values())
    with pytest.raises(TypeError, match="norm must be one of"):
        class Bad(EAD):  # noqa: F841
            norm = "l3"


@pytest.mark.parametrize("model", MODELS, ids=repr)
@pytest.mark.parametrize("attack", ATTACKS, ids=repr)
def test_attack_contract(attack: Attack, model: Fixture) -> None:
    x0, labels = samples(model, 6)
    res = attack(model.network, x0, labels, eps=None, rng=np.random.default_rng(0))
    check_contract(model.network, attack, res, x0, labels, *region(x0, None))
    assert res.success.mean() >= 0.5  # random nets on [0, 1]^d are almost always attackable


@pytest.mark.parametrize("attack", ATTACKS, ids=repr)
def test_cap_is_respected(attack: Attack) -> None:
    model = MODELS[0]
    x0, labels = samples(model, 6, seed=2)
    res = attack(model.network, x0, labels, eps=0.25, rng=np.random.default_rng(0))
    check_contract(model.network, attack, res, x0, labels, *region(x0, 0.25))


def test_bad_options_raise() -> None:
    for bad, match in (
            (lambda: EAD(steps=0), r"ead: steps and binary_steps must be >= 1"),
            (lambda: EAD(rule="l2"), r"ead: rule must be one of \('en', 'l1'\), got 'l2'"),
            (lambda: EAD(beta=-1.0), r"ead: beta and kappa must be >= 0"),
            (lambda: EAD(lr=0.0), r"ead: lr must be > 0, got 0\.0"),
            (lambda: LBFGS(const_factor=1.0), r"lbfgs: const_factor must be > 1"),
            (lambda: LBFGS(targets=0), r"lbfgs: maxiter, memory and targets must be >= 1"),
            (lambda: LBFGS(loss="l2"), r"lbfgs: loss must be one of \('ce', 'pair'\), got 'l2'"),
            (lambda: LBFGS(initial_const=-1.0), r"lbfgs: initial_const must be > 0"),
            (lambda: Boundary(step_adaptation=1.0), r"boundary: step_adaptation must be > 1"),
            (lambda: Boundary(init_tries=0), r"boundary: init_tries and update_every must be >= 1"),
            (lambda: Boundary(source_step=0.0), r"boundary: source_step must be > 0, got 0\.0")):
        with pytest.raises(InputError, match=match):
            bad()


# ----------------------------------------------------------------------------- hypothesis


@st.composite
def problems(draw: st.DrawFn) -> tuple[Network, list, np.ndarray, float, tuple[float, float]]:
    seed = draw(st.integers(0, 10_000))
    n_in, hidden, n_out = draw(st.integers(1, 5)), draw(st.integers(2, 10)), draw(st.integers(2, 4))
    rng = np.random.default_rng(seed)
    layers = float32_layers(random_layers(rng, [n_in, hidden, n_out]))
    lo = draw(st.sampled_from([0.0, -1.0]))
    x0 = rng.uniform(lo, 1.0, (3, n_in))
    x0[0, 0] = lo  # a coordinate on the domain's edge
    eps = draw(st.floats(0.0, 0.6))
    return relu_network(layers), layers, x0, eps, (lo, 1.0)


@pytest.mark.parametrize("attack", ATTACKS, ids=repr)
@HYPO
@given(problem=problems(), cap=st.booleans())
def test_points_never_leave_ball_or_domain(attack: Attack, problem: tuple, cap: bool) -> None:
    net, _, x0, eps, domain = problem
    labels = np.argmax(net.evaluate(x0), axis=1)
    eps_arg = eps if cap else None
    res = attack(net, x0, labels, eps=eps_arg, domain=domain, rng=np.random.default_rng(1))
    assert np.all(res.x >= domain[0]) and np.all(res.x <= domain[1])
    if eps_arg is not None:
        assert np.all(np.abs(res.x - x0) <= eps_arg)  # exact, no tolerance
    ok = res.success
    np.testing.assert_array_equal(res.distance[ok], np_distance(res.x, x0, attack.norm)[ok])


@pytest.mark.parametrize("attack", ATTACKS, ids=repr)
@HYPO
@given(problem=problems(), cap=st.booleans())
def test_successes_confirmed_on_ir_and_onnx(attack: Attack, problem: tuple, cap: bool) -> None:
    net, layers, x0, eps, domain = problem
    labels = np.argmax(net.evaluate(x0), axis=1)
    eps_arg = max(eps, 0.3) if cap else None
    res = attack(net, x0, labels, eps=eps_arg, domain=domain)
    onnx_eval = onnx_evaluator(relu_onnx(layers))
    lo, hi = region(x0, eps_arg, *domain)
    for i in np.flatnonzero(res.success):
        y = net.evaluate(res.x[i])
        assert float(margin_loss(torch.tensor(y[None]), torch.tensor([labels[i]]))[0]) >= 0
        term = Term(Box(lo[i], hi[i]), Halfspaces(np.zeros((0, y.size)), np.zeros(0)))
        y32 = onnx_eval(snap_into_box(res.x[i], term)[None])[0]
        assert float(margin_loss(torch.tensor(y32[None]), torch.tensor([labels[i]]))[0]) >= 0


# ----------------------------------------------------------------------------- EAD


def test_shrinkage_operator_is_the_projected_soft_threshold() -> None:
    x0 = torch.tensor([[0.5, 0.5, 0.5, 0.5, 0.5]])
    z = torch.tensor([[0.9, 0.52, 0.48, 0.1, 0.5]])
    lo, hi = torch.full_like(x0, 0.0), torch.full_like(x0, 0.8)
    out = shrink(z, x0, 0.05, lo, hi)
    torch.testing.assert_close(out, torch.tensor([[0.8, 0.5, 0.5, 0.15, 0.5]]))


def test_ead_reports_its_l1_distance_and_beats_cw_in_l1() -> None:
    model = Fixture((10, 24, 4), 5)
    x0, labels = samples(model, 10, seed=4)
    ead = EAD(steps=200, binary_steps=5, initial_const=0.1, lr=0.05, rule="l1")(
        model.network, x0, labels, eps=None)
    cw = CWL2(steps=200, binary_steps=5, initial_const=0.1, lr=0.05)(
        model.network, x0, labels, eps=None)
    ok = ead.success & cw.success
    assert ok.sum() >= 7
    l1 = np.abs(ead.x - x0).sum(axis=1)
    assert np.all(l1[ead.success] <= ead.distance[ead.success])
    assert np.mean(ead.distance[ok]) < np.mean(np.abs(cw.x - x0).sum(axis=1)[ok])


# ----------------------------------------------------------------------------- L-BFGS


def linear_problem(seed: int) -> tuple[Network, np.ndarray, np.ndarray, np.ndarray]:
    """A 3-class linear model, samples at the domain's centre and their analytic minimal
    L2 distance to the decision boundary (far from the box, so it is the answer)."""
    rng = np.random.default_rng(seed)
    W = float32_layers([(rng.normal(size=(3, 8)), np.zeros(3))])[0][0]
    x0 = 0.5 + rng.uniform(-0.02, 0.02, (5, 8))
    y = x0 @ W.T
    lab = np.argmax(y, axis=1)
    dist = np.full(5, np.inf)
    for j in range(3):
        gap = y[np.arange(5), lab] - y[:, j]
        norm = np.linalg.norm(W[lab] - W[j], axis=1)
        dist = np.where(lab == j, dist, np.minimum(dist, gap / np.where(norm > 0, norm, 1)))
    net = relu_network([(W, np.zeros(3))])
    return net, x0, lab, dist


@pytest.mark.parametrize(("seed", "loss", "slack"),
                         [(0, "pair", 1.005), (1, "pair", 1.005), (2, "pair", 1.005),
                          (1, "ce", 1.08)])
def test_lbfgs_finds_the_analytic_l2_minimum_of_a_linear_model(seed: int, loss: str,
                                                               slack: float) -> None:
    """``pair`` ends on the closest boundary point (up to the bisection's 0.2% on c);
    Szegedy's full cross-entropy lets the third class bend the path (6% on seed 1)."""
    net, x0, lab, dist = linear_problem(seed)
    assert np.all(dist < 0.45)  # so the closest boundary point lies inside [0, 1]^8
    res = LBFGS(loss=loss)(net, x0, lab, eps=None)
    assert res.success.all()
    assert np.all(res.distance >= dist * (1 - 1e-9))  # confirmed adversarial: never closer
    assert np.all(res.distance <= dist * slack)


# ----------------------------------------------------------------------------- Boundary


def test_boundary_distance_only_shrinks_with_more_steps() -> None:
    model = Fixture((10, 24, 4), 6)
    x0, labels = samples(model, 8, seed=6)
    runs = [Boundary(steps=s)(model.network, x0, labels, eps=None, rng=np.random.default_rng(3))
            for s in (0, 100, 600)]
    assert all(r.success.all() for r in runs)
    for a, b in zip(runs, runs[1:], strict=False):
        assert np.all(b.distance <= a.distance)  # same seed: a longer run extends a shorter one
        assert np.mean(b.distance) < 0.95 * np.mean(a.distance)


class LabelOnly(torch.nn.Module):
    """Wraps logits into one-hot labels and refuses any use under autograd."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() or x.requires_grad:
            raise RuntimeError("gradient access on a label-only model")
        self.calls += 1
        logits = self.inner(x)
        return torch.nn.functional.one_hot(logits.argmax(dim=1), logits.shape[1]).to(x.dtype)


def test_boundary_uses_labels_only(monkeypatch: pytest.MonkeyPatch) -> None:
    model = MODELS[1]
    x0, labels = samples(model, 5, seed=1)
    real = attack_base._logit_module
    wrappers: list[LabelOnly] = []

    def label_only(*args: object, **kwargs: object) -> torch.nn.Module:
        wrappers.append(LabelOnly(real(*args, **kwargs)))  # type: ignore[arg-type]  # passthrough
        return wrappers[-1]

    monkeypatch.setattr(attack_base, "_logit_module", label_only)
    res = Boundary(steps=300)(model.network, x0, labels, eps=None)
    assert wrappers and wrappers[0].calls > 300
    check_contract(model.network, Boundary(), res, x0, labels, *region(x0, None))
    assert res.success.mean() >= 0.6
    with pytest.raises(RuntimeError, match="gradient access"):
        LBFGS()(model.network, x0, labels, eps=None)  # the wrapper does bite


# ----------------------------------------------------------------------------- digits


@pytest.mark.slow
def test_quality_on_the_bundled_digits_model() -> None:
    from verinet import api, examples

    net = api.load_model(examples.model_path()).network
    data = np.load(examples.data_path())
    x0, y = data["x"][:10].astype(np.float64), data["y"][:10]
    keep = np.argmax(net.evaluate(x0), axis=1) == y
    x0, y = x0[keep], y[keep]
    cw = CWL2()(net, x0, y, eps=None)
    ead = EAD()(net, x0, y, eps=None)
    lb = LBFGS()(net, x0, y, eps=None)
    bd = Boundary()(net, x0, y, eps=None)
    assert cw.success.all() and ead.success.all() and lb.success.all() and bd.success.all()
    assert np.median(ead.distance) < np.median(np.abs(cw.x - x0).sum(axis=1))
    assert np.median(lb.distance) <= 1.05 * np.median(np.linalg.norm(cw.x - x0, axis=1))
    assert np.median(bd.distance / lb.distance) < 1.25
