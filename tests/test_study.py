"""verinet study: metrics, transfer matrix, Pareto front, rank correlations, CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verinet import api, examples
from verinet.cli import main
from verinet.study import (
    ModelMetrics,
    StudyModel,
    StudyOptions,
    model_metrics,
    pareto_front,
    rank_correlations,
    run_study,
    transfer_matrix,
)
from verinet.study.metrics import correct_mask, ifgsm_min_distortion
from verinet.types import InputError

FAST = StudyOptions(eps=0.1, ifgsm_steps=10, bisection=6, cw_steps=30, cw_binary_steps=3,
                    clever_batches=5, clever_batch_size=32)


@pytest.fixture(scope="module")
def bundled():
    m = api.load_model(str(examples.model_path()))
    d = np.load(str(examples.data_path()))
    return m, d["x"][:12].astype(np.float64), d["y"][:12].astype(np.int64)


@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=1, max_size=12))
@settings(max_examples=60, deadline=None)
def test_pareto_front_is_exactly_the_undominated(points):
    acc, rob = [p[0] for p in points], [p[1] for p in points]
    front = pareto_front(acc, rob)

    def dominates(i, j):
        return acc[i] >= acc[j] and rob[i] >= rob[j] and (acc[i] > acc[j] or rob[i] > rob[j])

    for j in range(len(points)):
        dominated = any(dominates(i, j) for i in range(len(points)))
        assert (j in front) == (not dominated)
    assert [acc[i] for i in front] == sorted(acc[i] for i in front)


def test_pareto_front_skips_nan():
    assert pareto_front([0.9, math.nan, 0.5], [0.1, 1.0, 0.2]) == [2, 0]


def _metrics(name, asr, clever, roby=0.5):
    return ModelMetrics(name=name, n_samples=10, n_correct=10, clean_accuracy=1.0,
                        ifgsm_success=asr, ifgsm_mean_linf=1 - asr, ifgsm_unfooled=0,
                        cw_success=1.0, cw_mean_l2=1.0, clever_linf=clever, roby=roby,
                        fsa=0.5, fsd=0.5, fsc=0.0)


def test_rank_correlations_signs():
    models = [_metrics(f"m{i}", asr, clever=1 - asr, roby=asr)
              for i, asr in enumerate((0.1, 0.4, 0.2, 0.9))]
    corr = {c.metric: c for c in rank_correlations(models)}
    assert corr["clever_linf"].spearman == pytest.approx(-1.0)
    assert corr["roby"].spearman == pytest.approx(1.0)
    assert corr["ifgsm_mean_linf"].kendall == pytest.approx(-1.0)
    assert math.isnan(corr["cw_mean_l2"].spearman)  # constant: undefined, not 0
    assert math.isnan(corr["certified_accuracy"].spearman) and corr["certified_accuracy"].n == 0


def test_options_reject_bad_values():
    for kw, match in (
            ({"eps": 0.0}, r"eps must lie in \(0, 1\], got 0\.0"),
            ({"eps": 1.5}, r"eps must lie in \(0, 1\], got 1\.5"),
            ({"eps": math.nan}, r"eps must lie in \(0, 1\], got nan"),
            ({"ifgsm_steps": 0}, r"ifgsm_steps must be >= 1, got 0"),
            ({"clever_batches": 0}, r"clever_batches must be >= 1, got 0"),
            ({"certify_timeout": -1.0}, r"certify_timeout must be >= 0, got -1\.0"),
            ({"pac": True}, r"give a certify timeout > 0 with pac")):
        with pytest.raises(InputError, match=match):
            StudyOptions(**kw)


def test_min_distortion_is_an_attack_radius(bundled):
    m, x, y = bundled
    ok = correct_mask(m.network, x, y)
    d = ifgsm_min_distortion(m.network, x[ok], y[ok], steps=10, rounds=8,
                             rng=np.random.default_rng(0))
    assert np.isfinite(d).all() and (d > 0).all() and (d <= 1).all()
    # every distance was confirmed: an attack at that radius (plus an ulp) succeeds again
    from verinet.study.metrics import ifgsm

    res = ifgsm(10)(m.network, x[ok], y[ok], eps=d, rng=np.random.default_rng(0))
    assert (res.distance[res.success] <= d[res.success] + 1e-12).all()


def test_model_metrics_ranges(bundled):
    m, x, y = bundled
    mm = model_metrics("digits", m.network, x, y, FAST)
    assert mm.n_samples == 12 and 0 < mm.n_correct <= 12
    assert mm.clean_accuracy == mm.n_correct / 12
    for v in (mm.ifgsm_success, mm.cw_success, mm.fsa, mm.fsd, mm.fsc):
        assert 0 <= v <= 1
    assert 0 < mm.ifgsm_mean_linf <= 1 and mm.cw_mean_l2 > 0 and mm.clever_linf >= 0
    assert mm.certified_accuracy is None  # certify_timeout 0: skipped
    d = mm.as_dict()
    json.dumps(d, allow_nan=False)
    assert set(d["seconds"]) == {"ifgsm", "cw", "clever", "lipschitz", "roby"}
    # sound radii lie below every confirmed adversarial example, so below their mean too
    assert 0 < mm.lipschitz_mean <= mm.ifgsm_mean_linf


def test_certified_sandwich_is_ordered(bundled):
    m, x, y = bundled
    opts = StudyOptions(eps=0.05, ifgsm_steps=10, bisection=4, cw_steps=20,
                        cw_binary_steps=2, clever_batches=3, clever_batch_size=16,
                        certify_timeout=1.0)
    mm = model_metrics("digits", m.network, x[:5], y[:5], opts, m.onnx_eval)
    assert mm.certified_accuracy is not None and mm.empirical_accuracy is not None
    assert mm.certified_accuracy <= mm.empirical_accuracy <= mm.clean_accuracy
    assert mm.certified_mean_lower <= mm.attack_mean_upper


def test_transfer_matrix_of_copies(bundled):
    m, x, y = bundled
    t = transfer_matrix([m.network, m.network], x, y, eps=0.1, steps=10)
    assert t.shape == (2, 2) and ((t >= 0) & (t <= 1)).all()
    assert np.allclose(t, t[0, 0])  # the same model: every entry is its own success rate
    ok = correct_mask(m.network, x, y)
    from verinet.study.metrics import ifgsm_success

    fooled, _ = ifgsm_success(m.network, x[ok], y[ok], 0.1, 10, np.random.default_rng([0, 0]))
    assert t[0, 0] == pytest.approx(fooled.mean())


def test_run_study_rejects_bad_model_sets(bundled):
    m, x, y = bundled
    with pytest.raises(InputError, match="a study needs at least one model"):
        run_study([], x, y, FAST)
    with pytest.raises(InputError, match=r"model names must be unique, got \['a', 'a'\]"):
        run_study([StudyModel("a", m.network), StudyModel("a", m.network)], x, y, FAST)


FAST_ARGS = ["--samples", "8", "--ifgsm-steps", "8", "--cw-steps", "20",
             "--clever-batches", "4", "--clever-batch-size", "16"]


def test_cli_two_models(tmp_path, capsys):
    mp, dp = str(examples.model_path()), str(examples.data_path())
    out, csv_path, png = tmp_path / "s.json", tmp_path / "s.csv", tmp_path / "s.png"
    code = main(["study", mp, mp, "--names", "a,b", "--data", dp, *FAST_ARGS,
                 "--out", str(out), "--csv", str(csv_path), "--plot", str(png)])
    assert code == 0
    rep = json.loads(out.read_text())
    assert [m["name"] for m in rep["models"]] == ["a", "b"]
    assert rep["transfer"]["sources"] == ["a", "b"]
    mat = np.array(rep["transfer"]["matrix"], dtype=float)
    assert np.allclose(mat, mat[0, 0])
    assert rep["guarantees"]["clever_linf"].startswith("estimate")
    assert csv_path.read_text().splitlines()[0].startswith("name,clean_accuracy")
    assert png.stat().st_size > 0
    text = capsys.readouterr().out
    assert "Pareto front" in text and "transfer" in text


@pytest.mark.parametrize("args", [
    ["MODEL", "MODEL", "--data", "DATA", "--names", "a"],     # name count
    ["MODEL", "MODEL", "--data", "DATA"],                      # duplicate stems
    ["MODEL", "--data", "DATA", "--eps", "2"],                 # eps > 1
    ["MODEL"],                                                 # no data
    ["MODEL", "--data", "missing.npz"],                        # missing file
    ["--data", "DATA"],                                        # data without a model
    ["MODEL", "--data", "DATA", "--smooth-sigma", "-1"],       # negative sigma
    ["MODEL", "--data", "DATA", "--smooth-sigma", "0.25", "--smooth-n", "10"],  # n < n0
])
def test_cli_bad_input(args, capsys):
    mp, dp = str(examples.model_path()), str(examples.data_path())
    argv = ["study", *[mp if a == "MODEL" else dp if a == "DATA" else a for a in args],
            *FAST_ARGS]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("verinet: error:")


@pytest.mark.slow
def test_pac_radii_beside_the_sandwich(bundled):
    m, x, y = bundled
    opts = StudyOptions(eps=0.05, ifgsm_steps=8, bisection=4, cw_steps=20, cw_binary_steps=2,
                        clever_batches=3, clever_batch_size=16, certify_timeout=2.0, pac=True)
    mm = model_metrics("digits", m.network, x[:2], y[:2], opts, m.onnx_eval)
    assert mm.pac_mean is not None and mm.pac_mean > 0
    assert mm.pac_inside is not None and 0 <= mm.pac_inside <= 1


def test_smoothed_certified_accuracy_beside_the_base_metrics(bundled):
    """Randomized smoothing's certified accuracy at a stated sigma and L2 radius: a share,
    labelled probabilistic (the smoothed classifier), larger at radius 0 than beyond."""
    from dataclasses import replace

    from verinet.report.study import GUARANTEES

    m, x, y = bundled
    at = [model_metrics("digits", m.network, x, y, replace(FAST, smooth_sigma=0.25,
                                                           smooth_radius=r, smooth_n=500))
          for r in (0.0, 0.25)]
    assert 0 < at[1].smoothed_accuracy < at[0].smoothed_accuracy <= at[0].clean_accuracy + 0.2
    assert "smoothing" in dict(at[0].seconds)
    assert model_metrics("digits", m.network, x, y, FAST).smoothed_accuracy is None
    assert GUARANTEES["smoothed_accuracy"].startswith("probabilistic")
