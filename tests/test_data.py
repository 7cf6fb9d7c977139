"""Loading labelled samples (.npz, .npy, .csv) and the one-line errors on bad data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from verinet.data import Samples, load_samples, validate_eps
from verinet.types import InputError

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared"
MNIST_CSV = SHARED / "deeppac" / "extras" / "mnist_100.csv"

N, D, C = 5, 6, 3


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, size=(N, D)), rng.integers(0, C, size=N)


def _write_csv(path: Path, x: np.ndarray, y: np.ndarray, header: str | None = None) -> Path:
    lines = [header] if header is not None else []
    for lab, row in zip(y, x, strict=True):
        lines.append(",".join([str(int(lab))] + [repr(float(v)) for v in row]))
    path.write_text("\n".join(lines) + "\n")
    return path


def _load(path: Path, **kw: object) -> Samples:
    opts: dict = {"n_inputs": D, "n_classes": C, **kw}
    return load_samples(path, **opts)


# ----------------------------------------------------------------------------- formats


def test_npz_flattens_images(tmp_path: Path) -> None:
    x, y = _data()
    p = tmp_path / "d.npz"
    np.savez(p, x=x.reshape(N, 2, 3).astype(np.float32), y=y)
    s = _load(p)
    assert s.x.shape == (N, D) and s.x.dtype == np.float64
    assert s.y.dtype == np.int64 and list(s.y) == list(y)
    np.testing.assert_allclose(s.x, x.astype(np.float32))
    assert s.source == str(p) and len(s) == N and s.n_inputs == D
    assert not s.x.flags.writeable and not s.y.flags.writeable


def test_npz_accepts_column_labels(tmp_path: Path) -> None:
    x, y = _data()
    p = tmp_path / "d.NPZ"
    with p.open("wb") as f:  # a file object: savez would append ".npz" to the name
        np.savez_compressed(f, x=x, y=y.reshape(-1, 1).astype(np.float64))
    assert list(_load(p).y) == list(y)


def test_npy_label_in_column_zero(tmp_path: Path) -> None:
    x, y = _data()
    p = tmp_path / "d.npy"
    np.save(p, np.column_stack([y, x]))
    s = _load(p)
    np.testing.assert_array_equal(s.x, x)
    assert list(s.y) == list(y)


@pytest.mark.parametrize("header", [None, "label," + ",".join(f"p{i}" for i in range(D))])
def test_csv_with_and_without_header(tmp_path: Path, header: str | None) -> None:
    x, y = _data()
    s = _load(_write_csv(tmp_path / "d.csv", x, y, header))
    np.testing.assert_array_equal(s.x, x)
    assert list(s.y) == list(y)


def test_csv_scale_divides(tmp_path: Path) -> None:
    x = np.arange(N * D).reshape(N, D) % 256
    y = np.zeros(N, dtype=int)
    s = _load(_write_csv(tmp_path / "d.csv", x, y), scale=255)
    np.testing.assert_allclose(s.x, x / 255.0)


def test_selection_start_and_samples(tmp_path: Path) -> None:
    x, y = _data()
    p = tmp_path / "d.npz"
    np.savez(p, x=x, y=y)
    s = _load(p, start=1, samples=2)
    np.testing.assert_array_equal(s.x, x[1:3])
    assert s.start == 1 and list(s.indices) == [1, 2]
    assert len(_load(p, start=3, samples=100)) == N - 3  # fewer when the file ends first


def test_mnist_shared_csv() -> None:
    if not MNIST_CSV.is_file():
        pytest.skip(f"shared data absent: {MNIST_CSV}")
    s = load_samples(MNIST_CSV, n_inputs=784, n_classes=10, scale=255)
    assert s.x.shape == (100, 784) and s.y.shape == (100,)
    assert 0 <= s.x.min() and s.x.max() <= 1 and s.x.max() > 0.9
    assert set(s.y.tolist()) <= set(range(10))
    with pytest.raises(InputError, match=r"outside \[0, 1\].*--scale 255"):
        load_samples(MNIST_CSV, n_inputs=784, n_classes=10)


# ----------------------------------------------------------------------------- errors


def _npz(tmp_path: Path, x: np.ndarray, y: np.ndarray) -> Path:
    p = tmp_path / "bad.npz"
    np.savez(p, x=x, y=y)
    return p


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="data file not found: .*nope.npz"):
        _load(tmp_path / "nope.npz")


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    d = tmp_path / "dir.csv"
    d.mkdir()
    with pytest.raises(InputError, match="not a file"):
        _load(d)


def test_unknown_extension(tmp_path: Path) -> None:
    p = tmp_path / "d.txt"
    p.write_text("1,2,3\n")
    with pytest.raises(InputError, match=r"unknown data format '\.txt'.*\.npz, \.npy, \.csv"):
        _load(p)


@pytest.mark.parametrize("suffix", [".npz", ".npy"])
def test_corrupt_binary(tmp_path: Path, suffix: str) -> None:
    p = tmp_path / f"d{suffix}"
    p.write_bytes(b"\x00garbage\xff" * 10)
    with pytest.raises(InputError, match=rf"cannot read .*d\{suffix}"):
        _load(p)


def test_npz_missing_array(tmp_path: Path) -> None:
    p = tmp_path / "d.npz"
    np.savez(p, images=np.zeros((N, D)), y=np.zeros(N))
    with pytest.raises(InputError, match=r"missing array\(s\) x \(found: images, y\)"):
        _load(p)


def test_npz_label_count_mismatch(tmp_path: Path) -> None:
    x, y = _data()
    with pytest.raises(InputError, match=r"y has shape \(4,\); expected \(5,\)"):
        _load(_npz(tmp_path, x, y[:4]))


def test_npz_non_numeric(tmp_path: Path) -> None:
    x, _ = _data()
    with pytest.raises(InputError, match="y must be numeric"):
        _load(_npz(tmp_path, x, np.array(["a"] * N)))


def test_npy_wrong_rank(tmp_path: Path) -> None:
    p = tmp_path / "d.npy"
    np.save(p, np.zeros((N, 2, 3)))
    with pytest.raises(InputError, match=r"expected a 2-D array \(N, 1 \+ n\).*\(5, 2, 3\)"):
        _load(p)


def test_wrong_feature_count(tmp_path: Path) -> None:
    x, y = _data()
    with pytest.raises(InputError, match="have 5 input values but the model has 6 inputs"):
        _load(_npz(tmp_path, x[:, :5], y))


def test_empty(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="contains no samples"):
        _load(_npz(tmp_path, np.zeros((0, D)), np.zeros(0, dtype=int)))
    p = tmp_path / "empty.csv"
    p.write_text("")
    with pytest.raises(InputError, match="contains no samples"):
        _load(p)
    p.write_text("label,a,b\n")
    with pytest.raises(InputError, match="contains no samples"):
        _load(p)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values(tmp_path: Path, bad: float) -> None:
    x, y = _data()
    x[3, 2] = bad
    with pytest.raises(InputError, match=r"sample 3, input 2 is .*must be finite"):
        _load(_npz(tmp_path, x, y))


def test_csv_nan_reported(tmp_path: Path) -> None:
    x, y = _data()
    x[1, 4] = np.nan
    with pytest.raises(InputError, match=r"d\.csv: sample 1, input 4 is nan"):
        _load(_write_csv(tmp_path / "d.csv", x, y))


def test_non_integer_label(tmp_path: Path) -> None:
    x, _ = _data()
    y = np.array([0, 1, 2.5, 0, 1])
    with pytest.raises(InputError, match="sample 2: label 2.5 is not an integer"):
        _load(_npz(tmp_path, x, y))


@pytest.mark.parametrize("label", [-1, C])
def test_label_out_of_range(tmp_path: Path, label: int) -> None:
    x, y = _data()
    y[4] = label
    with pytest.raises(InputError, match=rf"sample 4: label {label} is out of range \[0, 3\)"):
        _load(_npz(tmp_path, x, y))


def test_values_outside_unit_interval_hint(tmp_path: Path) -> None:
    x, y = _data()
    x[2, 1] = 200.0
    with pytest.raises(InputError, match=r"sample 2, input 1 = 200 is outside \[0, 1\]; pass "
                                         r"--scale 255"):
        _load(_npz(tmp_path, x, y))
    x[2, 1] = -0.5
    with pytest.raises(InputError, match=r"sample 2, input 1 = -0.25 .* after dividing by scale"):
        _load(_npz(tmp_path, x, y), scale=2.0)


@pytest.mark.parametrize("scale", [0, -1, float("nan"), float("inf")])
def test_bad_scale(tmp_path: Path, scale: float) -> None:
    x, y = _data()
    with pytest.raises(InputError, match="scale must be a positive finite number"):
        _load(_npz(tmp_path, x, y), scale=scale)


@pytest.mark.parametrize("samples", [0, -3])
def test_bad_sample_count(tmp_path: Path, samples: int) -> None:
    x, y = _data()
    with pytest.raises(InputError, match="number of samples must be positive"):
        _load(_npz(tmp_path, x, y), samples=samples)


def test_bad_start(tmp_path: Path) -> None:
    x, y = _data()
    p = _npz(tmp_path, x, y)
    with pytest.raises(InputError, match="must be >= 0"):
        _load(p, start=-1)
    with pytest.raises(InputError, match=r"first sample 5 is past the end \(5 samples\)"):
        _load(p, start=N)


def test_csv_ragged_row(tmp_path: Path) -> None:
    x, y = _data()
    p = _write_csv(tmp_path / "d.csv", x, y, header="label," + ",".join("abcdef"))
    lines = p.read_text().splitlines()
    lines[3] += ",0.5"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"sample 2 \(line 4\) has 8 columns, the first row has 7"):
        _load(p)


def test_csv_non_numeric_field(tmp_path: Path) -> None:
    x, y = _data()
    p = _write_csv(tmp_path / "d.csv", x, y)
    lines = p.read_text().splitlines()
    lines[1] = lines[1].replace(",", ",abc,", 1).rsplit(",", 1)[0]
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"sample 1 \(line 2\), column 1: not a number: 'abc'"):
        _load(p)


def test_csv_not_utf8(tmp_path: Path) -> None:
    p = tmp_path / "d.csv"
    p.write_bytes(b"\xff\xfe\x00\x01garbage")
    with pytest.raises(InputError, match="cannot read .*d.csv"):
        _load(p)


def test_errors_are_one_line(tmp_path: Path) -> None:
    p = tmp_path / "d.npz"
    p.write_bytes(b"PK\x03\x04 truncated zip\nwith newline")
    with pytest.raises(InputError) as info:
        _load(p)
    assert "\n" not in str(info.value)


# ----------------------------------------------------------------------------- eps


@pytest.mark.parametrize("eps", [0, 0.0, 0.03, 1, "0.5"])
def test_validate_eps_ok(eps: object) -> None:
    assert validate_eps(eps) == float(eps)  # type: ignore[arg-type]  # str accepted on purpose


@pytest.mark.parametrize("eps", [-0.1, 1.5, float("nan"), float("inf"), "abc", None])
def test_validate_eps_rejects(eps: object) -> None:
    with pytest.raises(InputError, match="eps must"):
        validate_eps(eps)
