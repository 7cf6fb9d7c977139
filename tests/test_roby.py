"""ROBY: ordering of separated vs overlapping clusters, ranges, the original code's
statistics, invariances, layer features, bad input and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.nets import relu_network
from verinet import api, examples
from verinet.cli import main
from verinet.estimates.roby import layer_features, roby, roby_statistics
from verinet.ir import ops as O
from verinet.ir.graph import Network, Node
from verinet.types import Guarantee, InputError


def clusters(rng: np.random.Generator, k: int, dim: int, per: int, separation: float,
             spread: float) -> tuple[np.ndarray, np.ndarray]:
    """``k`` Gaussian classes: unit-scale random centres times ``separation``, noise
    ``spread``; class spreads vary a little so min-max ranges are not degenerate."""
    centres = rng.normal(size=(k, dim)) * separation
    y = np.repeat(np.arange(k), per)
    scales = spread * rng.uniform(0.8, 1.2, size=k)
    return centres[y] + rng.normal(size=(y.size, dim)) * scales[y, None], y


def original_feature_sta(f: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """``feature_sta`` of the ROBY code (``Allen-piexl/ROBY``), transcribed loop by loop."""
    groups = [f[y == c] for c in np.unique(y)]
    d_list, centres = [], []
    for g in groups:
        c = g.mean(axis=0)
        centres.append(c)
        d_list.append(np.mean([np.sqrt(np.sum((p - c) ** 2)) for p in g]))
    fsa = 1 - np.mean([(d - min(d_list)) / (max(d_list) - min(d_list)) for d in d_list])
    d2 = [np.sqrt(np.sum((centres[i] - centres[j]) ** 2))
          for i in range(len(centres) - 1) for j in range(i + 1, len(centres))]
    fsd = np.mean([(d - min(d2)) / (max(d2) - min(d2)) for d in d2])
    o = [d_list[i] + d_list[j] - np.sqrt(np.sum((centres[i] - centres[j]) ** 2))
         for i in range(len(d_list)) for j in range(i + 1, len(d_list))]
    fsc = np.mean([(v - min(o)) / (max(o) - min(o)) for v in o])
    return float(fsa), float(fsd), float(fsc)


# ----------------------------------------------------------------------------- ordering


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), k=st.integers(2, 8), dim=st.integers(2, 12))
def test_separated_clusters_rank_above_overlapping(seed: int, k: int, dim: int) -> None:
    rng = np.random.default_rng(seed)
    sep = roby_statistics(*clusters(rng, k, dim, 30, separation=20.0, spread=0.2))
    ovl = roby_statistics(*clusters(rng, k, dim, 30, separation=0.2, spread=2.0))
    assert sep.roby > ovl.roby
    assert sep.fsa > ovl.fsa and sep.fsd > ovl.fsd and sep.fsc < ovl.fsc
    assert sep.fsc == 0.0  # disjoint class balls


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), k=st.integers(2, 7), dim=st.integers(1, 6),
       norm=st.sampled_from(["joint", "separate"]))
def test_statistics_lie_in_their_ranges(seed: int, k: int, dim: int, norm: str) -> None:
    rng = np.random.default_rng(seed)
    f, y = clusters(rng, k, dim, int(rng.integers(1, 12)), separation=float(
        rng.uniform(0.01, 10)), spread=float(rng.uniform(0.01, 10)))
    r = roby_statistics(f, y, normalisation=norm)
    for v in (r.fsa, r.fsd, r.fsc):
        assert 0.0 <= v <= 1.0
    for a in (r.fsa_per_class, r.fsd_per_pair, r.fsc_per_pair):
        assert (a >= 0).all() and (a <= 1).all()
    assert -1.0 <= r.roby <= 2.0
    assert r.roby == pytest.approx(2 * r.fsa - r.fsd)  # pair mean of FSA_i + FSA_j - FSD_ij
    assert r.guarantee is Guarantee.ESTIMATE
    for m in (r.centre_distance, r.fsd_per_pair, r.fsc_per_pair, r.roby_per_pair):
        np.testing.assert_array_equal(m, m.T)
        assert (np.diag(m) == 0).all()


# ----------------------------------------------------------------------------- definitions


def test_separate_normalisation_is_the_original_code() -> None:
    rng = np.random.default_rng(0)
    f, y = clusters(rng, 6, 5, 20, separation=2.0, spread=1.0)
    r = roby_statistics(f, y, normalisation="separate")
    assert (r.fsa, r.fsd, r.fsc) == pytest.approx(original_feature_sta(f, y), rel=1e-12)


def test_separate_normalisation_is_blind_to_centre_scale() -> None:
    """The documented limitation: moving every centre apart changes neither FSA nor FSD
    under the original per-statistic min-max, while the joint normalisation sees it."""
    rng = np.random.default_rng(1)
    centres, y = rng.normal(size=(5, 4)), np.repeat(np.arange(5), 25)
    noise = rng.normal(size=(y.size, 4)) * rng.uniform(0.5, 1.5, size=5)[y, None]
    noise -= np.stack([noise[y == c].mean(axis=0) for c in range(5)])[y]  # exact centres
    near, far = centres[y] * 0.3 + noise, centres[y] * 30 + noise
    a, b = (roby_statistics(f, y, normalisation="separate") for f in (near, far))
    assert (a.fsa, a.fsd) == pytest.approx((b.fsa, b.fsd))
    a, b = (roby_statistics(f, y) for f in (near, far))
    assert b.fsa > a.fsa and b.roby > a.roby


def test_raw_distances_and_invariances() -> None:
    f = np.array([[0.0, 0.0], [2.0, 0.0], [10.0, 0.0], [10.0, 4.0], [0.0, 9.0], [0.0, 11.0]])
    y = np.array([0, 0, 1, 1, 2, 2])
    r = roby_statistics(f, y)
    np.testing.assert_allclose(r.spread, [1.0, 2.0, 1.0])
    assert r.centre_distance[0, 1] == pytest.approx(np.hypot(9.0, 2.0))
    assert r.counts == (2, 2, 2) and r.classes == (0, 1, 2) and r.n_features == 2
    # Joint min-max over {d} and {D}: lo = 1 (d), hi = max D.
    hi = r.centre_distance.max()
    np.testing.assert_allclose(r.fsa_per_class, 1 - (r.spread - 1) / (hi - 1))
    perm = np.random.default_rng(2).permutation(6)
    moved = roby_statistics(f[perm] * 3.5 + 7.0, y[perm])
    assert (moved.roby, moved.fsa, moved.fsd, moved.fsc) == pytest.approx(
        (r.roby, r.fsa, r.fsd, r.fsc))


def test_all_distances_equal_normalise_to_zero() -> None:
    f = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [1.0, 0.0]])  # spreads 0, D = 1
    r = roby_statistics(f, np.array([0, 0, 1, 1]), normalisation="separate")
    assert (r.fsa, r.fsd, r.fsc) == (1.0, 0.0, 0.0)
    f = np.array([[0.0], [2.0], [4.0], [6.0]])  # spreads 1 and 1, D = 4: joint range > 0
    assert 0 <= roby_statistics(f, np.array([0, 0, 1, 1])).fsa <= 1


# ----------------------------------------------------------------------------- features


def _net() -> Network:
    rng = np.random.default_rng(3)
    return relu_network([(rng.normal(size=(6, 4)), rng.normal(size=6)),
                         (rng.normal(size=(3, 6)), rng.normal(size=3))])


def test_layer_features() -> None:
    net = _net()
    x = np.random.default_rng(4).uniform(size=(7, 4))
    np.testing.assert_allclose(layer_features(net, x), net.evaluate(x))
    (W, b) = net.node("fc0").op.weight, net.node("fc0").op.bias
    np.testing.assert_allclose(layer_features(net, x, "relu0", chunk=3),
                               np.maximum(x @ W.T + b, 0), rtol=1e-12)
    np.testing.assert_allclose(layer_features(net, x, "x"), x)
    soft = Network("x", (1, 4), net.nodes + (Node("p", O.Softmax(1), ("fc1",), (1, 3)),), "p")
    np.testing.assert_allclose(layer_features(soft, x), net.evaluate(x))  # logits, not p
    y = np.array([0, 1, 2, 0, 1, 2, 0])
    r = roby(net, x, y, layer="relu0")
    assert r.layer == "relu0" and r.n_features == 6
    assert roby(net, x, y).layer == "logits"


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("call, match", [
    (lambda: roby_statistics(np.zeros((3, 2)), np.array([1, 1, 1])), "at least 2 classes"),
    (lambda: roby_statistics(np.full((2, 2), np.nan), np.array([0, 1])), "NaN"),
    (lambda: roby_statistics(np.zeros((2, 2)), np.array([0.0, 1.0])), "integers"),
    (lambda: roby_statistics(np.zeros((2, 2)), np.array([0, 1, 1])), "shape"),
    (lambda: roby_statistics(np.zeros((0, 2)), np.zeros(0, dtype=int)), "non-empty"),
    (lambda: roby_statistics(np.zeros((2, 2)), np.array([0, 1]), normalisation="z"),
     "normalisation"),
    (lambda: roby(_net(), np.zeros((2, 4)), np.array([0, 5])), r"\[0, 3\)"),
    (lambda: roby(_net(), np.zeros((2, 4)), np.array([0, 1]), layer="fc9"), "no node named"),
    (lambda: roby(_net(), np.zeros((2, 3)), np.array([0, 1])), "expected"),
    (lambda: layer_features(_net(), np.zeros((2, 4)), chunk=0), "chunk"),
], ids=["one-class", "nan", "label-type", "label-shape", "empty", "norm", "label-range",
        "layer", "x-shape", "chunk"])
def test_bad_input_is_one_line(call, match: str) -> None:  # noqa: ANN001
    with pytest.raises(InputError, match=match) as e:
        call()
    assert "\n" not in str(e.value)


# ----------------------------------------------------------------------------- CLI


def test_cli_on_the_bundled_example(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.json"
    assert main(["roby", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "ROBY" in text and "FSA" in text and "FSC" in text
    d = json.loads(out.read_text())
    assert d["guarantee"] == "estimate" and d["layer"] == "logits" and len(d["classes"]) == 10
    assert 0 <= d["fsa"] <= 1 and 0 <= d["fsd"] <= 1 and 0 <= d["fsc"] <= 1
    data = np.load(examples.data_path())
    net = api.load_model(examples.model_path()).network
    direct = roby_statistics(layer_features(net, data["x"]), data["y"])
    assert d["roby"] == pytest.approx(direct.roby)
    assert main(["roby", str(examples.model_path()), "--data", str(examples.data_path()),
                 "--layer", "relu1", "--normalisation", "separate", "--samples", "60"]) == 0
    assert "relu1 (32 features, 60 samples" in capsys.readouterr().out


def test_cli_bad_layer(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["roby", "--layer", "nope"]) == 2
    err = [e for e in capsys.readouterr().err.strip().splitlines()
           if not e.startswith("WARNING")]
    assert len(err) == 1 and "no node named 'nope'" in err[0]
