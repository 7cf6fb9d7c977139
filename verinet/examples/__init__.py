"""A bundled example for ``verinet certify``: a small digits classifier and test samples.

``digits_mlp.onnx`` is a ReLU MLP 64-32-32-10 (Gemm/Relu, opset 13, input ``input`` of
shape [batch, 64], output ``logits`` of shape [batch, 10]) trained by
``scripts/train_digits.py`` on scikit-learn's 8x8 ``load_digits`` with the pixels divided
by 16, so inputs lie in [0, 1] and no ``--mean/--std`` is needed.  Seeded and
deterministic; 96.0% accuracy on its 450-sample stratified test split.

``digits_test.npz`` holds the first 100 samples of that test split: ``x`` (float32,
(100, 64), values k/16) and ``y`` (int64 labels)::

    verinet certify $(python3 -c "from verinet import examples; print(examples.model_path())") \\
        --data $(python3 -c "from verinet import examples; print(examples.data_path())") --eps 0.03
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

MODEL = "digits_mlp.onnx"
DATA = "digits_test.npz"


def _path(name: str) -> Path:
    # The package is installed as plain files (setuptools package-data), so the resource
    # is a real file on disk that the ONNX and numpy readers can open by name.
    return Path(str(files(__name__) / name))


def model_path() -> Path:
    """Path of the bundled digits MLP (ONNX)."""
    return _path(MODEL)


def data_path() -> Path:
    """Path of the 100 bundled digits test samples (.npz with ``x`` and ``y``)."""
    return _path(DATA)
