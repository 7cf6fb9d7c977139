"""verinet.train: seeded models, objectives, distillation, ONNX export and round trip.

Tiny tasks trained on the fly with few epochs.  The adversarial-training test uses a
task with one robust feature (right 90% of the time, flipped only by a perturbation of
0.3) and twenty weak ones (together ~100% predictive, each flipped by 0.1 + noise):
standard training relies on the weak features and falls to PGD at eps 0.15, PGD and
FGSM training learn the robust one (Tsipras et al.'s trade-off, in miniature).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from verinet import api
from verinet.optim import Adam
from verinet.train import (
    DEFAULT_RECIPES,
    FGSMMixed,
    PGDTraining,
    Recipe,
    Standard,
    TrainConfig,
    accuracy,
    build_mlp,
    check_export,
    data_loss,
    distill,
    fit,
    from_file,
    mlp_to_onnx,
    pgd_perturb,
    predict,
    robust_accuracy,
    save_onnx,
    soft_labels,
    stratified_split,
    to_network,
    train_recipe,
)
from verinet.types import InputError, ModelError

FAST = TrainConfig(epochs=30, lr=1e-2, log_every=0)


def features_task(n: int, seed: int, k: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """See the module docstring: column 0 robust, columns 1..k weak."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    s = 2 * y - 1
    flip = rng.random(n) < 0.1
    robust = 0.5 + 0.3 * np.where(flip, -s, s) + rng.normal(0, 0.05, n)
    weak = 0.5 + 0.1 * s[:, None] + rng.normal(0, 0.1, (n, k))
    return np.clip(np.column_stack([robust, weak]), 0, 1).astype(np.float32), y


def blobs(n: int, seed: int, m: int = 3, d: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """``m`` Gaussian clusters in [0, 1]^d."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).uniform(0.2, 0.8, (m, d))
    y = rng.integers(0, m, n)
    x = np.clip(centres[y] + rng.normal(0, 0.08, (n, d)), 0, 1)
    return x.astype(np.float32), y


def weights(net: torch.nn.Module) -> list[torch.Tensor]:
    return [t.detach().clone() for t in net.state_dict().values()]


# ----------------------------------------------------------------------------- models


def test_build_mlp_is_torch_default_init_without_global_state() -> None:
    torch.manual_seed(3)
    ref = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    state = torch.random.get_rng_state()
    net = build_mlp(6, 3, (8,), seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)  # global RNG untouched
    for a, b in zip(weights(ref), weights(net), strict=True):
        assert torch.equal(a, b)
    assert [m.out_features for m in build_mlp(4, 2, (5, 7, 3), seed=0)
            if isinstance(m, torch.nn.Linear)] == [5, 7, 3, 2]
    with pytest.raises(InputError, match="bad MLP shape"):
        build_mlp(4, 1, (5,), seed=0)


def test_adam_matches_torch_optim_bit_for_bit() -> None:
    x, y = blobs(64, 0)
    nets = [build_mlp(6, 3, (8,), seed=1) for _ in range(2)]
    opts = [Adam(nets[0].parameters(), lr=3e-3, weight_decay=1e-4),
            torch.optim.Adam(nets[1].parameters(), lr=3e-3, weight_decay=1e-4)]
    for _ in range(5):
        for net, opt in zip(nets, opts, strict=True):
            loss = F.cross_entropy(net(torch.tensor(x)), torch.tensor(y))
            opt.zero_grad()
            loss.backward()
            opt.step()
    for a, b in zip(weights(nets[0]), weights(nets[1]), strict=True):
        assert torch.equal(a, b)


# ----------------------------------------------------------------------------- data


def test_stratified_split_is_seeded_disjoint_and_stratified() -> None:
    x = np.arange(200, dtype=np.float32).reshape(100, 2) / 200
    y = np.repeat(np.arange(4), 25)
    a = stratified_split(x, y, test_size=0.2, seed=1, name="t")
    b = stratified_split(x, y, test_size=0.2, seed=1, name="t")
    np.testing.assert_array_equal(a.x_test, b.x_test)
    assert np.bincount(a.y_test).tolist() == [5, 5, 5, 5] and len(a.y_train) == 80
    assert not set(a.x_train[:, 0].tolist()) & set(a.x_test[:, 0].tolist())
    c = stratified_split(x, y, test_size=0.2, seed=2, name="t")
    assert not np.array_equal(a.x_test, c.x_test)
    with pytest.raises(InputError, match="test_size"):
        stratified_split(x, y, test_size=1.0, seed=0, name="t")


def test_from_file_reads_any_samples_file(tmp_path: Path) -> None:
    x, y = blobs(60, 0)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    split = from_file(tmp_path / "d.npz", n_inputs=6, n_classes=3, seed=0)
    assert split.n_inputs == 6 and split.n_classes == 3 and split.name == "d.npz"
    assert len(split.y_train) + len(split.y_test) == 60
    with pytest.raises(InputError,
                       match="samples have 6 input values but the model has 5 inputs"):
        from_file(tmp_path / "d.npz", n_inputs=5, n_classes=3)


# ----------------------------------------------------------------------------- training


@pytest.mark.parametrize("objective", [Standard(), PGDTraining(eps=0.1, steps=3),
                                       FGSMMixed(eps=0.1)], ids=repr)
def test_training_is_reproducible_bit_for_bit(objective: object) -> None:
    x, y = blobs(120, 0)
    cfg = TrainConfig(epochs=3, log_every=0, seed=5)
    runs = []
    for _ in range(2):
        net = build_mlp(6, 3, (8, 8), seed=5)
        fit(net, x, y, cfg, objective=objective)  # type: ignore[arg-type]  # an Objective
        runs.append(net)
    for a, b in zip(weights(runs[0]), weights(runs[1]), strict=True):
        assert torch.equal(a, b)
    assert mlp_to_onnx(runs[0]).SerializeToString() == mlp_to_onnx(runs[1]).SerializeToString()
    other = build_mlp(6, 3, (8, 8), seed=5)
    fit(other, x, y, dataclasses.replace(cfg, seed=6), objective=objective)  # type: ignore[arg-type]  # an Objective
    assert not all(torch.equal(a, b) for a, b in zip(weights(runs[0]), weights(other),
                                                     strict=True))


def test_data_loss_definitions() -> None:
    z = torch.tensor([[2.0, -1.0, 0.5], [0.1, 0.2, 3.0]])
    y = torch.tensor([0, 2])
    torch.testing.assert_close(data_loss(1.0)(z, y), F.cross_entropy(z, y))
    torch.testing.assert_close(data_loss(4.0)(z, y), F.cross_entropy(z / 4, y))
    onehot = F.one_hot(y, 3).float()
    torch.testing.assert_close(data_loss(4.0, soft=True)(z, onehot), F.cross_entropy(z / 4, y))
    p = torch.softmax(torch.randn(2, 3, generator=torch.Generator().manual_seed(0)), 1)
    want = -(p * F.log_softmax(z / 4, dim=1)).sum(1).mean()
    torch.testing.assert_close(data_loss(4.0, soft=True)(z, p), want)
    with pytest.raises(InputError, match="temperature"):
        data_loss(0.0)


def test_pgd_perturbation_stays_in_ball_and_domain_and_raises_the_loss() -> None:
    x, y = blobs(50, 1)
    net = build_mlp(6, 3, (8,), seed=0)
    fit(net, x, y, TrainConfig(epochs=5, log_every=0))
    xt, yt = torch.tensor(x), torch.tensor(y)
    loss = data_loss()
    adv = pgd_perturb(net, xt, yt, loss, eps=0.1, steps=10, step_size=0.025,
                      random_start=True, domain=(0.0, 1.0), gen=torch.Generator().manual_seed(0))
    assert float((adv - xt).abs().max()) <= 0.1 + 1e-7
    assert float(adv.min()) >= 0 and float(adv.max()) <= 1
    with torch.no_grad():
        assert float(loss(net(adv), yt)) > float(loss(net(xt), yt))


def test_fgsm_mixed_objective_is_the_definition() -> None:
    x, y = blobs(16, 2)
    net = build_mlp(6, 3, (8,), seed=0)
    xt, yt = torch.tensor(x), torch.tensor(y)
    loss = data_loss()
    got = FGSMMixed(eps=0.05, alpha=0.3).loss(net, xt, yt, loss, torch.Generator())
    xr = xt.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(loss(net(xr), yt), xr)
    x_adv = torch.clamp(xt + 0.05 * torch.sign(g), 0, 1)
    want = 0.3 * loss(net(xt), yt) + 0.7 * loss(net(x_adv), yt)
    torch.testing.assert_close(got, want)


def test_adversarial_training_increases_pgd_robust_accuracy() -> None:
    x, y = features_task(400, 0)
    xt, yt = features_task(200, 1)
    eps = 0.15
    robust = {}
    for name, objective in [("standard", Standard()), ("pgd", PGDTraining(eps=eps, steps=5)),
                            ("fgsm", FGSMMixed(eps=eps))]:
        net = build_mlp(21, 2, (16,), seed=0)
        fit(net, x, y, FAST, objective=objective)  # type: ignore[arg-type]  # an Objective
        robust[name] = robust_accuracy(to_network(mlp_to_onnx(net)), xt, yt, eps,
                                       steps=20, restarts=2)
        if name == "standard":
            assert accuracy(net, xt, yt) >= 0.97  # the weak features are very predictive
    assert robust["standard"] < 0.3
    assert robust["pgd"] > 0.8 and robust["fgsm"] > 0.8


# ----------------------------------------------------------------------------- distillation


def test_distillation_follows_the_definition() -> None:
    x, y = blobs(300, 0)  # about 93% separable
    T = 20.0
    cfg = dataclasses.replace(FAST, epochs=100)  # logits must grow to ~T times the usual
    d = distill(x, y, 3, hidden=(16,), temperature=T, config=cfg)
    soft = soft_labels(d.teacher, x, T)
    with torch.no_grad():
        want = torch.softmax(d.teacher(torch.tensor(x)) / T, dim=1).numpy()
    np.testing.assert_array_equal(soft, want)
    z = predict(d.student, x)
    at_t = torch.softmax(torch.tensor(z) / T, dim=1).numpy()
    assert np.abs(at_t - soft).sum(axis=1).mean() < 0.15  # the student matches at T
    assert (at_t.argmax(1) == soft.argmax(1)).mean() >= 0.95
    deployed = torch.softmax(torch.tensor(z), dim=1).numpy()  # T = 1
    assert deployed.max(axis=1).mean() > 0.99 > at_t.max(axis=1).mean()
    # against a normally trained twin, the deployed logits are about T times larger
    normal = build_mlp(6, 3, (16,), seed=cfg.seed)
    fit(normal, x, y, cfg)
    spread = float(np.ptp(z, axis=1).mean() / np.ptp(predict(normal, x), axis=1).mean())
    assert spread > T / 4
    assert accuracy(d.student, x, y) >= 0.9


def test_distilled_export_is_the_t1_logits_unless_asked(tmp_path: Path) -> None:
    x, y = blobs(90, 0)
    student = distill(x, y, 3, hidden=(8,), temperature=10.0,
                      config=TrainConfig(epochs=3, log_every=0)).student
    z = predict(student, x)
    for temperature in (1.0, 10.0):
        model = mlp_to_onnx(student, temperature=temperature)
        path = save_onnx(model, tmp_path / f"t{temperature}.onnx")
        loaded = api.load_model(path)
        np.testing.assert_allclose(loaded.network.evaluate(x.astype(np.float64)),
                                   z / temperature, rtol=1e-5, atol=1e-5)
        check_export(model, student, x, temperature=temperature)
    with pytest.raises(ModelError, match="differs"):
        check_export(mlp_to_onnx(student, temperature=10.0), student, x)


# ----------------------------------------------------------------------------- export


def test_exported_onnx_reimports_with_equivalent_outputs(tmp_path: Path) -> None:
    x, y = blobs(100, 3)
    net = build_mlp(6, 3, (12, 9, 7), seed=2)
    fit(net, x, y, TrainConfig(epochs=4, log_every=0))
    model = mlp_to_onnx(net, graph_name="blobs")
    path = save_onnx(model, tmp_path / "sub" / "blobs.onnx")
    assert path.read_bytes() == model.SerializeToString()
    loaded = api.load_model(path)
    assert (loaded.n_inputs, loaded.n_outputs) == (6, 3)
    want = predict(net, x)
    np.testing.assert_allclose(loaded.network.evaluate(x.astype(np.float64)), want,
                               rtol=1e-5, atol=1e-5)
    assert loaded.onnx_eval is not None
    np.testing.assert_allclose(loaded.onnx_eval(x), want, rtol=1e-5, atol=1e-5)
    assert check_export(model, net, x) < 1e-5
    np.testing.assert_allclose(to_network(model).evaluate(x.astype(np.float64)), want,
                               rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- recipes


def test_recipes_validate_and_train(tmp_path: Path) -> None:
    names = [r.name for r in DEFAULT_RECIPES]
    assert len(set(names)) == len(names)
    kinds = {r.kind for r in DEFAULT_RECIPES}
    assert kinds == {"standard", "pgd", "fgsm", "distill"}
    assert len({r.hidden for r in DEFAULT_RECIPES}) >= 3
    with pytest.raises(InputError, match="needs eps"):
        Recipe(name="x", kind="pgd")
    with pytest.raises(InputError, match="kind"):
        Recipe(name="x", kind="mixup")
    with pytest.raises(InputError, match="name"):
        Recipe(name="a/b")
    x, y = blobs(90, 0)
    split = stratified_split(x, y, test_size=0.3, seed=0, name="blobs")
    for recipe in (Recipe(name="d", kind="distill", temperature=5.0, hidden=(8,), epochs=2),
                   Recipe(name="p", kind="pgd", eps=0.05, steps=2, hidden=(8,), epochs=2)):
        trained = train_recipe(recipe, split, TrainConfig(epochs=50, log_every=0))
        assert 0 <= trained.test_accuracy <= 1 and trained.seconds > 0


def test_train_defended_script_writes_models_and_manifest(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "train_defended", Path(__file__).resolve().parents[1] / "scripts" / "train_defended.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    argv = ["--recipes", "normal,distill-T10", "--epochs", "1", "--out-dir", str(tmp_path),
            "--eval", "0.1", "--eval-samples", "10"]
    deterministic, threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    try:  # the script sets both process-wide
        assert script.main(argv) == 0
        manifest = json.loads((tmp_path / "manifest.json").read_text())
        assert script.main(argv[:1] + ["normal"] + argv[2:]) == 0
    finally:
        torch.use_deterministic_algorithms(deterministic)
        torch.set_num_threads(threads)
    assert [m["name"] for m in manifest["models"]] == ["normal", "distill-T10"]
    assert api.load_model(tmp_path / "distill-T10.onnx").n_outputs == 10
    assert set(manifest["models"][0]["pgd_robust_accuracy"]) == {"0.1"}
    rerun = json.loads((tmp_path / "manifest.json").read_text())["models"][0]
    assert rerun["sha256"] == manifest["models"][0]["sha256"]  # seeded: same bytes
    with pytest.raises(SystemExit, match="unknown recipe"):
        script.main(["--recipes", "nope"])


@pytest.mark.slow
def test_pgd_training_on_digits_raises_robust_accuracy() -> None:
    pytest.importorskip("sklearn")
    from verinet.train import digits

    split = digits()
    cfg = TrainConfig(epochs=40, log_every=0)
    rob = {}
    for recipe in (Recipe(name="n"), Recipe(name="p", kind="pgd", eps=0.1)):
        net = to_network(mlp_to_onnx(train_recipe(recipe, split, cfg).model))
        rob[recipe.name] = robust_accuracy(net, split.x_test[:150], split.y_test[:150], 0.1,
                                           steps=20, restarts=2)
    assert rob["p"] > rob["n"] + 0.2
