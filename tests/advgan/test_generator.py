"""The generator's bound and the settings' checks: ``|G(x)| <= eps`` for any weights and
inputs (Hypothesis), examples inside the domain, one-line errors for bad settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from verinet.advgan import Discriminator, Generator, GeneratorConfig, TrainOptions
from verinet.advgan.nets import eps_factor
from verinet.types import InputError

HYPO = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SHAPES = [(1, 5), (1, 1, 4, 4), (1, 2, 5, 7)]


@HYPO
@given(shape=st.sampled_from(SHAPES), conv=st.booleans(),
       eps=st.floats(1e-6, 1.0), seed=st.integers(0, 2**31 - 1),
       scale=st.sampled_from([1.0, 10.0, 1e3]), data_seed=st.integers(0, 2**31 - 1),
       dtype=st.sampled_from([torch.float32, torch.float64]))
def test_perturbation_never_exceeds_eps(shape: tuple[int, ...], conv: bool, eps: float,
                                        seed: int, scale: float, data_seed: int,
                                        dtype: torch.dtype) -> None:
    kind = "conv" if conv and len(shape) == 4 else "mlp"
    gen = Generator(GeneratorConfig(input_shape=shape, eps=eps, kind=kind, width=4), seed)
    with torch.no_grad():  # large weights saturate tanh at exactly +-1
        for p in gen.parameters():
            p.mul_(scale)
    gen = gen.to(dtype)
    rng = np.random.default_rng(data_seed)
    n = int(np.prod(shape[1:]))
    x = np.concatenate([rng.uniform(0, 1, (6, n)), np.zeros((1, n)), np.ones((1, n)),
                        rng.normal(0, 100, (2, n))])  # far outside the domain too
    xt = torch.tensor(x, dtype=dtype)
    with torch.no_grad():
        delta = gen(xt).double().numpy()
        adv = gen.adversarial(xt[:8]).double().numpy()
    assert delta.shape == x.shape and np.isfinite(delta).all()
    assert np.abs(delta).max() <= eps  # in float64, no tolerance
    # training's path (autograd, out of place) computes the same numbers
    assert np.array_equal(gen(xt).detach().double().numpy(), delta)
    assert ((adv >= 0.0) & (adv <= 1.0)).all()  # clipped to the domain


def test_eps_factor_rounds_down() -> None:
    for eps in (0.1, 0.3, 1 / 3, 1e-7):
        f32 = eps_factor(eps, torch.float32)
        assert f32 <= eps and np.float32(f32) == f32
        assert eps_factor(eps, torch.float64) == eps


def test_other_domain_and_discriminator_shape() -> None:
    cfg = GeneratorConfig(input_shape=(1, 1, 6, 6), eps=0.5, kind="conv", domain=(-1.0, 2.0))
    gen, disc = Generator(cfg, 0), Discriminator(cfg, 1)
    x = torch.full((3, 36), 1.9)
    with torch.no_grad():
        assert float(gen.adversarial(x).max()) <= 2.0
        assert disc(x).shape == (3,)
    assert gen.config.width == 16  # 0 resolves to the kind's default
    assert Generator(GeneratorConfig(input_shape=(1, 3), eps=0.1), 0).config.width == 12


def test_same_seed_same_weights() -> None:
    cfg = GeneratorConfig(input_shape=(1, 8), eps=0.1)
    a, b, c = Generator(cfg, 7), Generator(cfg, 7), Generator(cfg, 8)
    state = torch.get_rng_state()
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    Generator(cfg, 9)
    assert torch.equal(state, torch.get_rng_state())  # the global generator is untouched


@pytest.mark.parametrize("kwargs, match", [
    ({"input_shape": (1, 4), "eps": 0.0}, "eps must be > 0"),
    ({"input_shape": (1, 4), "eps": float("nan")}, "eps must be > 0"),
    ({"input_shape": (2, 4), "eps": 0.1}, "input_shape must be"),
    ({"input_shape": (1, 4), "eps": 0.1, "kind": "resnet"}, "kind must be one of"),
    ({"input_shape": (1, 4), "eps": 0.1, "kind": "conv"}, "conv generator needs an image"),
    ({"input_shape": (1, 1, 3, 8), "eps": 0.1, "kind": "conv"}, "H, W >= 4"),
    ({"input_shape": (1, 4), "eps": 0.1, "domain": (1.0, 0.0)}, "domain must be"),
    ({"input_shape": (1, 4), "eps": 0.1, "width": -1}, "width must be"),
], ids=repr)
def test_bad_generator_config(kwargs: dict, match: str) -> None:
    with pytest.raises(InputError, match=match):
        GeneratorConfig(**kwargs)


def test_config_round_trip_refuses_unknown_keys() -> None:
    cfg = GeneratorConfig(input_shape=(1, 1, 4, 4), eps=0.2, kind="conv", width=3)
    assert GeneratorConfig.from_dict(cfg.as_dict()) == cfg
    with pytest.raises(InputError, match="unknown generator config key"):
        GeneratorConfig.from_dict({**cfg.as_dict(), "depth": 3})
    with pytest.raises(InputError, match="bad generator config"):
        GeneratorConfig.from_dict({"eps": 0.2})
    with pytest.raises(InputError, match="must be a mapping"):
        GeneratorConfig.from_dict([1, 2])


@pytest.mark.parametrize("kwargs, match", [
    ({"epochs": 0}, "epochs and batch size"),
    ({"batch_size": 0}, "epochs and batch size"),
    ({"lr": 0.0}, "lr must be > 0"),
    ({"alpha": -1.0}, "alpha must be >= 0"),
    ({"kappa": float("inf")}, "kappa must be >= 0"),
    ({"c": -0.5}, "c must be >= 0"),
    ({"gan_loss": "wgan"}, "gan_loss must be one of"),
    ({"shift": -1}, "shift must be >= 0"),
    ({"gamma": -1.0}, "gamma must be >= 0"),
], ids=repr)
def test_bad_train_options(kwargs: dict, match: str) -> None:
    with pytest.raises(InputError, match=match):
        TrainOptions(**kwargs)


def test_hinge_bound() -> None:
    assert TrainOptions(c=2.0).hinge_bound(0.1, 100) == 2.0
    assert TrainOptions(c_share=0.5).hinge_bound(0.1, 100) == pytest.approx(0.5)
