"""DeepPAC on the shared artifact networks (skipped without ``../shared/deeppac``; slow):
the published spot checks and the ConvSmall conversion."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from verinet import api
from verinet.pac import FeatureMap, PacOptions, PacProblem, PacVerdict, pac_check

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "deeppac"
FNN1 = SHARED / "models" / "mnist_FNN_1.onnx"
CNN1 = SHARED / "models" / "convSmallRELU__Point.pth"
MNIST = SHARED / "extras" / "mnist_100.csv"

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not MNIST.is_file(), reason="../shared/deeppac is absent")]


def _mnist(n: int) -> tuple[np.ndarray, np.ndarray]:
    d = np.loadtxt(MNIST, delimiter=",", max_rows=n, ndmin=2)
    return d[:, 1:] / 255.0, d[:, 0].astype(int)


def _problem(path: Path, image: int, **options: object) -> PacProblem:
    model = api.load_model(path, mean=[0.1307], std=[0.3081])
    x, y = _mnist(image + 1)
    return PacProblem(model.network, model.onnx_eval, x[image], int(y[image]),
                      PacOptions(**options),  # type: ignore[arg-type]
                      FeatureMap.normalisation(0.1307, 0.3081, model.network.input_shape))


def test_fnn1_image0_spot_checks() -> None:
    """The artifact: r = 4 robust with lambda* 0.0312; r = 5 unknown with lambda* 0.0470,
    candidate class 3, U = 0.0817 (an independent HiGHS LP run: 0.03103 / 0.04705)."""
    prob = _problem(FNN1, 0)
    r4, r5 = pac_check(prob, 4 / 255), pac_check(prob, 5 / 255)
    assert r4.verdict is PacVerdict.ROBUST and r4.margin == pytest.approx(0.0312, rel=0.05)
    assert r5.verdict is PacVerdict.UNKNOWN and r5.margin == pytest.approx(0.0470, rel=0.05)
    assert r5.rival == 3 and r5.upper == pytest.approx(0.0817, rel=0.1)
    assert r4.counts.forward_passes == 2000 + 8000 + 1582


def test_convsmall_conversion_and_cnn1_spot_check(tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from convert_convsmall import convert

    dst = tmp_path / "cnn1.onnx"
    assert convert(CNN1, dst) < 1e-4
    model = api.load_model(dst, mean=[0.1307], std=[0.3081])
    x, y = _mnist(100)
    assert (model.network.evaluate(x).argmax(axis=1) == y).mean() == 0.99  # README: 99%
    # The artifact: r = 12 robust (lambda* 0.0819), r = 13 unknown (lambda* 0.0895).  Its
    # Phase 1 LP reproduces the margins; the default (least squares + one Lawson step)
    # learns a closer model on CNN1 (smaller lambda*) with the same verdicts here.
    lp = _problem(dst, 0, phase1="lp")
    r12, r13 = pac_check(lp, 12 / 255), pac_check(lp, 13 / 255)
    assert r12.verdict is PacVerdict.ROBUST and r12.margin == pytest.approx(0.0819, rel=0.01)
    assert r13.verdict is PacVerdict.UNKNOWN and r13.margin == pytest.approx(0.0895, rel=0.01)
    assert r13.rival == 3
    fast = _problem(dst, 0)
    d12, d13 = pac_check(fast, 12 / 255), pac_check(fast, 13 / 255)
    assert d12.verdict is PacVerdict.ROBUST and d13.verdict is not PacVerdict.ROBUST
    assert d12.margin < r12.margin
