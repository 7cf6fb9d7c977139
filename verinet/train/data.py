"""Training data: a stratified train/test split of labelled samples in [0, 1].

:func:`digits` is scikit-learn's bundled 8x8 ``load_digits`` (1,797 images, pixels / 16;
scikit-learn is imported only here and is not a verinet dependency);
:func:`from_file` reads any file :func:`verinet.data.load_samples` accepts.  Both split
with :func:`stratified_split`, seeded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from verinet.data import load_samples
from verinet.types import InputError, frozen_array


@dataclass(frozen=True)
class Split:
    """``x_*`` (N, n) float32 in [0, 1] and ``y_*`` (N,) int64 labels in
    ``[0, n_classes)``; read-only arrays."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    name: str
    n_classes: int

    def __post_init__(self) -> None:
        for field in ("x_train", "x_test"):
            object.__setattr__(self, field, frozen_array(getattr(self, field), dtype=np.float32))
        for field in ("y_train", "y_test"):
            object.__setattr__(self, field, frozen_array(getattr(self, field), dtype=np.int64))
        if self.x_train.ndim != 2 or self.x_test.shape[1:] != self.x_train.shape[1:]:
            raise InputError(f"{self.name}: train/test inputs have shapes "
                             f"{self.x_train.shape} and {self.x_test.shape}")
        if len(self.x_train) != len(self.y_train) or len(self.x_test) != len(self.y_test):
            raise InputError(f"{self.name}: inputs and labels differ in length")

    @property
    def n_inputs(self) -> int:
        return int(self.x_train.shape[1])


def stratified_split(x: np.ndarray, y: np.ndarray, *, test_size: float, seed: int,
                     name: str, n_classes: int | None = None) -> Split:
    """Per class, a seeded ``test_size`` share of the samples (rounded, at least one when
    the class has two or more) goes to the test set; the order within each set follows
    the permutation."""
    if not 0 < test_size < 1:
        raise InputError(f"test_size must lie in (0, 1), got {test_size}")
    y = np.asarray(y, dtype=np.int64)
    k = int(y.max()) + 1 if n_classes is None else n_classes
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(y))
    test = np.zeros(len(y), dtype=bool)
    for c in range(k):
        rows = perm[y[perm] == c]
        n_test = min(len(rows) - 1, max(1, round(test_size * len(rows)))) if len(rows) > 1 else 0
        test[rows[:n_test]] = True
    tr, te = perm[~test[perm]], perm[test[perm]]
    return Split(x[tr], y[tr], x[te], y[te], name, k)


def digits(*, seed: int = 0, test_size: float = 0.25) -> Split:
    """scikit-learn's 8x8 digits, pixels / 16, the split of ``scripts/train_digits.py``
    (scikit-learn's stratified ``train_test_split`` with ``random_state=seed``)."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise InputError("the digits data set needs scikit-learn "
                         "(pip install scikit-learn)") from None
    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_size, stratify=y,
                                              random_state=seed)
    return Split(x_tr, y_tr, x_te, y_te, "digits", 10)


def from_file(path: str | os.PathLike[str], *, n_inputs: int, n_classes: int,
              scale: float | None = None, test_size: float = 0.25, seed: int = 0) -> Split:
    """Samples of a ``.npz``/``.npy``/``.csv`` file (validated by
    :func:`verinet.data.load_samples`), split by :func:`stratified_split`."""
    s = load_samples(path, n_inputs=n_inputs, n_classes=n_classes, scale=scale)
    return stratified_split(s.x.astype(np.float32), s.y, test_size=test_size, seed=seed,
                            name=os.path.basename(os.fspath(path)), n_classes=n_classes)
