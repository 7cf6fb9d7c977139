"""Certify on the shared MNIST networks (skipped cleanly when ``../shared`` is absent).

Soundness, not speed: every reported bracket must hold the witnesses the sandwich
states, and a witness must be misclassified by the original ONNX model.  Speed and the
share of exact radii are measured by ``benchmarks/certify_radius.py``.
"""

from pathlib import Path

import numpy as np
import pytest

from verinet import api
from verinet.certify.result import SampleStatus
from verinet.data import load_samples

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MNIST = SHARED / "deeppac" / "extras" / "mnist_100.csv"
MODELS = {
    "fnn1": (SHARED / "deeppac" / "models" / "mnist_FNN_1.onnx", 0.1307, 0.3081),
    "256x2": (SHARED / "vnncomp" / "onnx" / "mnist-net_256x2.onnx", None, None),
}
pytestmark = pytest.mark.skipif(not MNIST.is_file(), reason="shared MNIST data absent")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_radius_sandwich_on_shared_mnist(name: str) -> None:
    path, mean, std = MODELS[name]
    if not path.is_file():
        pytest.skip(f"{path} absent")
    model = api.load_model(path, mean=mean, std=std)
    data = load_samples(MNIST, n_inputs=784, n_classes=10, scale=255.0, samples=1, start=0)
    report = api.certify(model, data.x, data.y, eps=0.02, radius=True, timeout=10.0)
    for s in report.samples:
        assert s.radius is not None and s.radius.lower <= s.radius.upper
        if s.witness is not None:
            y = model.onnx_eval(s.witness.x[None, :])[0]
            assert np.delete(y, s.label).max() >= y[s.label]
            d = float(np.abs(s.witness.x - data.x[s.index]).max())
            assert d == s.witness.distance and d >= s.radius.lower
        if s.status is SampleStatus.VERIFIED:
            assert s.radius.upper > 0.02
        if s.status is SampleStatus.FALSIFIED:
            assert s.witness is not None and s.witness.distance <= 0.02
    assert any(s.exact for s in report.samples)
