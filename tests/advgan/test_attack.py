"""The ``advgan`` attack: every example lies in the ball ∩ domain, every success is a
point the float64 IR misclassifies, and every confirmed success is misclassified by the
ONNX model too (replayed as certify replays witnesses)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.advgan.helpers import flat_net, image_net, points, write_onnx
from verinet import api
from verinet.advgan import Generator, GeneratorConfig, TrainOptions, attack_samples, train_advgan
from verinet.attacks import REGISTRY, AdvGAN
from verinet.types import Box, InputError

HYPO = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _fooled(out: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per row of outputs: some other class scores at least the label's (ties count)."""
    own = out[np.arange(len(y)), y]
    return np.where(np.eye(out.shape[1], dtype=bool)[y], -np.inf, out).max(axis=1) >= own


def _misclassified(net, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return _fooled(net.evaluate(x), y)


@HYPO
@given(seed=st.integers(0, 2**31 - 1), eps=st.floats(0.01, 0.6),
       scale=st.sampled_from([1.0, 30.0]), image=st.booleans(),
       lo=st.sampled_from([0.0, 0.2]))
def test_examples_stay_in_the_ball_and_successes_are_confirmed(
        seed: int, eps: float, scale: float, image: bool, lo: float) -> None:
    """Random (untrained) generators: whatever they propose, the attack's answer is inside
    the L-inf ball ∩ domain and a reported success is misclassified by the IR."""
    net = image_net() if image else flat_net()
    x0, y = points(net, 30, seed % 1000)
    x0 = np.clip(x0, lo, 1.0)
    kind = "conv" if image else "mlp"
    gen = Generator(GeneratorConfig(input_shape=net.input_shape, eps=eps, kind=kind, width=4),
                    seed)
    with torch.no_grad():
        for p in gen.parameters():
            p.mul_(scale)
    domain = Box(np.full(net.n_inputs, lo), np.ones(net.n_inputs))
    res = AdvGAN(generator=gen)(net, x0, y, eps=eps, domain=domain)
    assert (np.abs(res.x - x0) <= eps).all()
    assert ((res.x >= lo) & (res.x <= 1.0)).all()
    ok = res.success
    if ok.any():
        assert _misclassified(net, res.x[ok], y[ok]).all()
    assert (res.distance[ok] <= eps).all() and np.isinf(res.distance[~ok]).all()
    assert ((res.x == x0) | ok[:, None]).all()  # a failed sample keeps x0


def _trained(net, eps: float = 0.3):
    x, y = points(net, 300, 1)
    cfg = GeneratorConfig(input_shape=net.input_shape, eps=eps, width=64)
    opts = TrainOptions(epochs=40, kappa=3.0, gamma=0.1, log_every=0)
    return train_advgan(net, x, y, config=cfg, options=opts).generator


def test_every_reported_success_is_misclassified_by_the_ir_and_onnx(tmp_path: Path) -> None:
    model = api.load_model(write_onnx(tmp_path / "net.onnx"))
    gen = _trained(model.network)
    x, y = points(model.network, 120, 5)
    y[:10] = (y[:10] + 1) % 3  # ten misclassified samples: never attacked
    rep = attack_samples(model.network, model.onnx_eval, AdvGAN(generator=gen), x, y)
    ok = np.array([s.confirmed for s in rep.samples])
    correct = np.array([s.correct for s in rep.samples])
    assert rep.onnx_checked and rep.n == 120 and rep.n_correct == 110 == correct.sum()
    assert not ok[:10].any() and ok.sum() == rep.n_confirmed >= 0.7 * rep.n_correct
    assert rep.n_confirmed <= rep.n_success_ir
    assert rep.success_rate == rep.n_confirmed / 110
    xs = rep.x[ok]
    assert (np.abs(xs - x[ok]) <= 0.3).all() and ((xs >= 0) & (xs <= 1)).all()
    assert (xs.astype(np.float32).astype(np.float64) == xs).all()  # what ONNX ran
    assert _misclassified(model.network, xs, y[ok]).all()
    assert _fooled(model.onnx_eval(xs), y[ok]).all()
    assert (rep.x[~ok] == x[~ok]).all()
    d = rep.as_dict()
    assert d["summary"]["confirmed"] == rep.n_confirmed and len(d["samples"]) == 120


def test_a_success_the_onnx_model_denies_is_not_confirmed(tmp_path: Path) -> None:
    model = api.load_model(write_onnx(tmp_path / "net.onnx"))
    gen = _trained(model.network)
    x, y = points(model.network, 40, 5)

    def loyal(xs: np.ndarray) -> np.ndarray:  # an "ONNX model" that always says the label
        out = np.zeros((len(xs), 3))
        out[:, y[0]] = 1.0
        return out

    keep = y == y[0]
    rep = attack_samples(model.network, loyal, AdvGAN(generator=gen), x[keep], y[keep])
    assert rep.n_success_ir > 0 and rep.n_confirmed == 0
    rep_ir = attack_samples(model.network, None, AdvGAN(generator=gen), x[keep], y[keep])
    assert not rep_ir.onnx_checked and rep_ir.n_confirmed == rep.n_success_ir


def test_eps_and_shape_must_match_the_generator() -> None:
    net = flat_net()
    gen = Generator(GeneratorConfig(input_shape=net.input_shape, eps=0.2), 0)
    x, y = points(net, 4, 0)
    with pytest.raises(InputError, match="trained for eps 0.2, the attack was asked for eps 0.1"):
        AdvGAN(generator=gen)(net, x, y, eps=0.1)
    other = Generator(GeneratorConfig(input_shape=(1, 5), eps=0.2), 0)
    with pytest.raises(InputError, match="the generator takes 5 inputs, the model 6"):
        AdvGAN(generator=other)(net, x, y, eps=0.2)
    with pytest.raises(InputError, match="needs a trained Generator"):
        AdvGAN(generator=torch.nn.Linear(6, 6))  # type: ignore[arg-type]  # the point


def test_float64_run_and_one_pass() -> None:
    net = flat_net()
    gen = _trained(net)
    x, y = points(net, 50, 3)
    a = AdvGAN(generator=gen)
    r32 = a(net, x, y, eps=0.3)
    r64 = a(net, x, y, eps=0.3, dtype=torch.float64)
    assert r32.success.mean() >= 0.6 and abs(r32.success.mean() - r64.success.mean()) <= 0.1
    assert next(gen.parameters()).dtype == torch.float32  # the float64 run used a copy
    assert "advgan" not in REGISTRY  # needs a trained generator: not default-constructible
