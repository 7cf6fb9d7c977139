"""AdvGAN in verinet study: a generator per model (trained or given), its success rate
confirmed on the ONNX model, its transfer row, its rank correlation, the reports and the
CLI."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from verinet import api, examples
from verinet.advgan import attack_samples, save_generator
from verinet.attacks import AdvGAN
from verinet.cli import main
from verinet.report.study import GUARANTEES, format_table, report_to_dict
from verinet.study import StudyModel, StudyOptions, run_study
from verinet.study.advgan import adversarial_examples, advgan_transfer, study_generator
from verinet.study.metrics import correct_mask
from verinet.types import InputError

FAST = StudyOptions(eps=0.1, ifgsm_steps=8, bisection=4, cw_steps=20, cw_binary_steps=2,
                    clever_batches=3, clever_batch_size=16, advgan_epochs=30)


@pytest.fixture(scope="module")
def bundled():
    m = api.load_model(str(examples.model_path()))
    d = np.load(str(examples.data_path()))
    return m, d["x"][:40].astype(np.float64), d["y"][:40].astype(np.int64)


@pytest.fixture(scope="module")
def study(bundled):
    m, x, y = bundled
    models = [StudyModel("a", m.network, m.onnx_eval), StudyModel("b", m.network, m.onnx_eval)]
    return run_study(models, x, y, FAST)


def test_success_rate_is_confirmed_and_ranked(bundled, study):
    m, x, y = bundled
    a, b = study.models
    assert a.advgan_success is not None and 0.2 < a.advgan_success <= 1
    assert {"advgan", "advgan_train"} <= dict(a.seconds).keys()
    # the same generator's examples, confirmed again on the IR and the ONNX model
    gen = study_generator(m.network, x, y, eps=0.1, epochs=30,
                          seed=int(np.random.SeedSequence([0, 0]).generate_state(1)[0]))
    rep = attack_samples(m.network, m.onnx_eval, AdvGAN(generator=gen), x, y)
    assert rep.success_rate == pytest.approx(a.advgan_success)
    assert all(s.predicted != s.label for s in rep.samples if s.confirmed)
    assert "advgan_success" in {c.metric for c in study.correlations}
    assert GUARANTEES["advgan_success"].startswith("empirical")
    assert any("training-set figures" in n for n in study.notes)


def test_transfer_rows(bundled, study):
    m, x, y = bundled
    t = study.advgan_transfer
    assert t is not None and t.shape == (2, 2) and ((t >= 0) & (t <= 1)).all()
    # the same network twice: generator i fools both columns alike
    assert t[0, 0] == t[0, 1] and t[1, 0] == t[1, 1]
    # the diagonal counts IR successes: at least the ONNX-confirmed ones
    assert t[0, 0] >= study.models[0].advgan_success - 1e-12
    d = report_to_dict(study)
    assert d["advgan_transfer"]["sources"] == ["a", "b"]
    assert np.array(d["advgan_transfer"]["matrix"], dtype=float) == pytest.approx(t)
    text = format_table(study)
    assert "transfer (AdvGAN)" in text and "AdvGAN" in text.splitlines()[1]


def test_transfer_matrix_counts_misclassified_examples(bundled):
    m, x, y = bundled
    gen = study_generator(m.network, x, y, eps=0.2, epochs=5, seed=3)
    t = advgan_transfer([m.network], [gen], x, y)
    ok = correct_mask(m.network, x, y)
    adv = adversarial_examples(gen, x[ok])
    assert np.abs(adv - x[ok]).max() <= 0.2 and adv.min() >= 0 and adv.max() <= 1
    wrong = np.argmax(m.network.evaluate(adv), axis=1) != y[ok]
    assert t[0, 0] == pytest.approx(wrong.mean())


def test_given_generators_are_checked(bundled, tmp_path):
    m, x, y = bundled
    gen = study_generator(m.network, x, y, eps=0.05, epochs=2, seed=0)
    with pytest.raises(InputError, match="trained for eps 0.05, the study's eps is 0.1"):
        run_study([StudyModel("a", m.network, generator=gen)], x, y, FAST)
    with pytest.raises(InputError, match="give every model a trained generator"):
        run_study([StudyModel("a", m.network, generator=gen), StudyModel("b", m.network)],
                  x, y, replace(FAST, eps=0.05, advgan_epochs=0))
    rep = run_study([StudyModel("a", m.network, m.onnx_eval, generator=gen)], x, y,
                    replace(FAST, eps=0.05, advgan_epochs=0))
    assert rep.models[0].advgan_success is not None and not rep.notes
    assert "advgan_train" not in dict(rep.models[0].seconds)
    with pytest.raises(InputError, match="advgan_epochs must be >= 0"):
        StudyOptions(advgan_epochs=-1)


def test_without_advgan_nothing_runs(bundled):
    m, x, y = bundled
    rep = run_study([StudyModel("a", m.network)], x[:8], y[:8], replace(FAST, advgan_epochs=0))
    assert rep.advgan_transfer is None and rep.models[0].advgan_success is None
    assert report_to_dict(rep)["advgan_transfer"] is None


FAST_ARGS = ["--ifgsm-steps", "8", "--cw-steps", "20", "--clever-batches", "4",
             "--clever-batch-size", "16"]


def test_cli_trains_loads_and_reports(bundled, tmp_path, capsys):
    m, x, y = bundled
    mp, dp = str(examples.model_path()), str(examples.data_path())
    gen = study_generator(m.network, x, y, eps=0.1, epochs=10, seed=1)
    gp = save_generator(gen, tmp_path / "g.pt")
    train = tmp_path / "train.npz"
    np.savez(train, x=x[20:], y=y[20:])
    out, csv_path, png = tmp_path / "s.json", tmp_path / "s.csv", tmp_path / "s.png"
    code = main(["study", mp, mp, "--names", "given,trained", "--data", dp, "--samples", "20",
                 *FAST_ARGS, "--advgan-epochs", "5", "--advgan-generators", f"{gp},",
                 "--advgan-data", str(train), "--out", str(out), "--csv", str(csv_path),
                 "--plot", str(png)])
    assert code == 0
    rep = json.loads(out.read_text())
    assert rep["options"]["advgan_epochs"] == 5 and rep["notes"] == []
    given, trained = rep["models"]
    assert "advgan_train" not in given["seconds"] and "advgan_train" in trained["seconds"]
    assert 0 <= given["advgan_success"] <= 1 and 0 <= trained["advgan_success"] <= 1
    assert len(rep["advgan_transfer"]["matrix"]) == 2
    assert "advgan_success" in csv_path.read_text().splitlines()[0].split(",")
    assert png.stat().st_size > 0
    assert "transfer (AdvGAN)" in capsys.readouterr().out


@pytest.mark.parametrize("extra, message", [
    (["--advgan-generators", "g.pt"], "lists 1 files for 2 models"),
    (["--advgan-generators", "missing.pt,missing.pt"], "generator file not found"),
    (["--advgan-generators", ","], "give --advgan-epochs to train"),
    (["--advgan-data", "DATA"], "--advgan-data needs --advgan-epochs > 0"),
    (["--advgan-epochs", "-2"], "advgan_epochs must be >= 0"),
])
def test_cli_bad_advgan_input(tmp_path, capsys, extra, message):
    mp, dp = str(examples.model_path()), str(examples.data_path())
    extra = [dp if a == "DATA" else a for a in extra]
    argv = ["study", mp, mp, "--names", "a,b", "--data", dp, "--samples", "4", *FAST_ARGS,
            *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("verinet: error:") and message in err[0]
