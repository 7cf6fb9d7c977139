"""Saving and loading generators: a bit-exact round trip, and a one-line InputError for
every bad or mismatched file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.advgan.helpers import flat_net, image_net, points
from verinet.advgan import (
    GeneratorConfig,
    TrainOptions,
    load_generator,
    save_generator,
    train_advgan,
)
from verinet.advgan.checkpoint import FORMAT, VERSION
from verinet.attacks import AdvGAN
from verinet.report.records import file_sha256
from verinet.types import InputError


@pytest.fixture(scope="module")
def trained():
    net = image_net()
    x, y = points(net, 60, 0)
    cfg = GeneratorConfig(input_shape=net.input_shape, eps=0.25, kind="conv", width=4)
    return net, train_advgan(net, x, y, config=cfg,
                             options=TrainOptions(epochs=2, log_every=0, shift=1))


def test_round_trip(trained, tmp_path: Path) -> None:
    net, t = trained
    path = save_generator(t.generator, tmp_path / "g.pt", result=t.result,
                          target_name="net.onnx", target_sha256="ab" * 32)
    saved = load_generator(path, input_shape=net.input_shape, eps=0.25)
    g = saved.generator
    assert g.config == t.generator.config and not g.training
    a, b = t.generator.state_dict(), g.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    x = torch.rand(5, net.n_inputs)
    with torch.no_grad():
        assert torch.equal(t.generator(x), g(x))
    assert (saved.target_name, saved.target_sha256) == ("net.onnx", "ab" * 32)
    train = dict(saved.train)
    assert train["n_train"] == 60 and train["options"]["shift"] == 1
    x0, y = points(net, 10, 3)
    assert (AdvGAN.load(path, net, 0.25)(net, x0, y, eps=0.25).x ==
            AdvGAN(generator=t.generator)(net, x0, y, eps=0.25).x).all()
    assert len(file_sha256(path)) == 64


def _payload(t) -> dict:
    return {"format": FORMAT, "version": VERSION, "config": t.generator.config.as_dict(),
            "state_dict": t.generator.state_dict(), "meta": {}}


def _write(tmp_path: Path, payload) -> Path:
    p = tmp_path / "g.pt"
    torch.save(payload, p)
    return p


@pytest.mark.parametrize("case, match", [
    ("missing", "generator file not found"),
    ("directory", "is a directory"),
    ("empty", "is empty"),
    ("text", r"is not a saved AdvGAN generator \(torch.load failed"),
    ("pickle", r"is not a saved AdvGAN generator \(torch.load failed"),
    ("other", "no 'verinet-advgan-generator' header"),
    ("version", "version 99 is not supported"),
    ("no_state", "lacks state_dict"),
    ("config", "unknown generator config key"),
    ("bad_eps", "eps must be > 0"),
    ("weights", "the weights do not fit the generator config"),
    ("nan", "NaN or infinite"),
], ids=repr)
def test_bad_files(trained, tmp_path: Path, case: str, match: str) -> None:
    _, t = trained
    good = _payload(t)
    p = tmp_path / "g.pt"
    if case == "directory":
        p.mkdir()
    elif case == "empty":
        p.write_bytes(b"")
    elif case == "text":
        p.write_text("not a generator\n")
    elif case == "pickle":  # a pickle with code in it: refused by weights_only, never run
        import pickle

        p.write_bytes(pickle.dumps(np.random.default_rng(0), protocol=2))
    elif case == "other":
        _write(tmp_path, {"a": torch.zeros(2)})
    elif case == "version":
        _write(tmp_path, {**good, "version": 99})
    elif case == "no_state":
        _write(tmp_path, {k: v for k, v in good.items() if k != "state_dict"})
    elif case == "config":
        _write(tmp_path, {**good, "config": {**good["config"], "layers": 3}})
    elif case == "bad_eps":
        _write(tmp_path, {**good, "config": {**good["config"], "eps": -1.0}})
    elif case == "weights":
        _write(tmp_path, {**good, "config": {**good["config"], "width": 5}})
    elif case == "nan":
        state = {k: v.clone() for k, v in good["state_dict"].items()}
        next(iter(state.values())).fill_(float("nan"))
        _write(tmp_path, {**good, "state_dict": state})
    with pytest.raises(InputError, match=match) as e:
        load_generator(p)
    assert "\n" not in str(e.value)


def test_mismatched_model_or_eps(trained, tmp_path: Path) -> None:
    net, t = trained
    p = save_generator(t.generator, tmp_path / "g.pt")
    with pytest.raises(InputError, match=r"trained for inputs of shape \(1, 1, 6, 6\), the "
                                         r"model takes \(1, 6\)"):
        load_generator(p, input_shape=flat_net().input_shape)
    with pytest.raises(InputError, match="trained for eps 0.25, not 0.3"):
        load_generator(p, eps=0.3)
    with pytest.raises(InputError, match="trained for inputs of shape"):
        AdvGAN.load(p, flat_net())


def test_unwritable_path(trained, tmp_path: Path) -> None:
    _, t = trained
    with pytest.raises(InputError, match="cannot write generator"):
        save_generator(t.generator, tmp_path / "missing" / "g.pt")
    assert not list(tmp_path.iterdir())
