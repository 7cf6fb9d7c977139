"""Loading labelled samples (.npz, .npy, .csv) and the one-line errors on bad data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from verinet.data import Samples, load_samples, validate_eps
from verinet.types import InputError

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared"
MNIST_CSV = SHARED / "deeppac" / "extras" / "mnist_100.csv"
CIFAR_CSV = SHARED / "deeppac" / "extras" / "cifar_100.csv"

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


# ----------------------------------------------------------------------------- layout

HWC_SHAPE = (1, 3, 2, 4)  # C, H, W = 3, 2, 4: 24 inputs


def _hwc_csv(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """Two images whose value at (channel c, row i, column j) is 100 c + 10 i + j (plus
    1 on the second image), stored HWC as cifar_100.csv is; returns them in CHW too."""
    _, c, h, w = HWC_SHAPE
    chw = np.fromfunction(lambda k, i, j: 100 * k + 10 * i + j, (c, h, w))
    imgs = np.stack([chw, chw + 1])  # (2, C, H, W)
    rows = imgs.transpose(0, 2, 3, 1).reshape(2, -1)  # (row, col, channel) interleaved
    p = tmp_path / "hwc.csv"
    lines = [",".join([str(k)] + [str(int(v)) for v in r]) for k, r in enumerate(rows)]
    p.write_text("\n".join(lines) + "\n")
    return p, imgs.reshape(2, -1)


def test_hwc_layout_transposes_to_chw(tmp_path: Path) -> None:
    p, chw = _hwc_csv(tmp_path)
    n = chw.shape[1]
    s = load_samples(p, n_inputs=n, n_classes=2, scale=400, layout="hwc",
                     input_shape=HWC_SHAPE)
    np.testing.assert_array_equal(s.x, chw / 400)
    assert list(s.y) == [0, 1]
    # the first stored values are pixel (0, 0)'s three channels: 0, 100, 200
    assert list(np.loadtxt(p, delimiter=",")[0, 1:4]) == [0, 100, 200]
    assert s.x[0, 0] == 0 and s.x[0, 8] == 100 / 400 and s.x[0, 16] == 200 / 400
    # the default (and "chw") keeps the stored order
    for layout in (None, "chw"):
        kept = load_samples(p, n_inputs=n, n_classes=2, scale=400, layout=layout,
                            input_shape=HWC_SHAPE)
        np.testing.assert_array_equal(kept.x, np.loadtxt(p, delimiter=",")[:, 1:] / 400)
    # selection happens on samples, the reordering within each
    one = load_samples(p, n_inputs=n, n_classes=2, scale=400, layout="hwc",
                       input_shape=HWC_SHAPE, start=1)
    np.testing.assert_array_equal(one.x, chw[1:] / 400)


def test_hwc_layout_npz_images(tmp_path: Path) -> None:
    """An .npz holding (N, H, W, C) images flattens to HWC order, then reorders."""
    _, chw = _hwc_csv(tmp_path)
    imgs = chw.reshape((2,) + HWC_SHAPE[1:]).transpose(0, 2, 3, 1) / 400
    p = tmp_path / "d.npz"
    np.savez(p, x=imgs, y=np.array([0, 1]))
    s = load_samples(p, n_inputs=24, n_classes=2, layout="hwc", input_shape=HWC_SHAPE)
    np.testing.assert_allclose(s.x, chw / 400)


def test_hwc_single_channel_is_identity(tmp_path: Path) -> None:
    x, y = _data()
    p = _npz(tmp_path, x, y)
    s = _load(p, layout="hwc", input_shape=(1, 1, 2, 3))
    np.testing.assert_array_equal(s.x, x)


@pytest.mark.parametrize(("shape", "message"), [
    (None, r"layout 'hwc' needs the model's input shape"),
    ((1, 6), r"needs a model with a rank-4 NCHW input \(1, C, H, W\), this one takes \(1, 6\)"),
    ((1, 3, 2), r"rank-4 NCHW input .* takes \(1, 3, 2\)"),
    ((2, 3, 1, 1), r"rank-4 NCHW input .* takes \(2, 3, 1, 1\)"),
    ((1, 3, 2, 2), r"input shape \(1, 3, 2, 2\) has 12 values but the model has 6 inputs"),
])
def test_hwc_layout_rejects_shapes(tmp_path: Path, shape: tuple[int, ...] | None,
                                   message: str) -> None:
    x, y = _data()
    with pytest.raises(InputError, match=message):
        _load(_npz(tmp_path, x, y), layout="hwc", input_shape=shape)


def test_unknown_layout(tmp_path: Path) -> None:
    x, y = _data()
    with pytest.raises(InputError, match=r"unknown data layout 'nhwc': expected one of chw, hwc"):
        _load(_npz(tmp_path, x, y), layout="nhwc", input_shape=(1, 3, 1, 2))


def test_hwc_errors_name_file_positions(tmp_path: Path) -> None:
    """Errors about values name the input by its column in the file, before reordering."""
    x = np.full((2, 24), 0.5)
    x[1, 5] = 2.0  # stored pixel (0, 1), channel 2; model input 2 * 8 + 1 = 17
    p = _npz(tmp_path, x, np.array([0, 1]))
    with pytest.raises(InputError, match=r"sample 1, input 5 = 2 is outside \[0, 1\]"):
        load_samples(p, n_inputs=24, n_classes=2, layout="hwc", input_shape=HWC_SHAPE)
    with pytest.raises(InputError, match="have 24 input values but the model has 12 inputs"):
        load_samples(p, n_inputs=12, n_classes=2, layout="hwc", input_shape=(1, 3, 2, 2))


def test_cifar_shared_csv_layout() -> None:
    """cifar_100.csv is HWC: after reordering, channel 0 of image 0 holds its red values."""
    if not CIFAR_CSV.is_file():
        pytest.skip(f"shared data absent: {CIFAR_CSV}")
    raw = np.loadtxt(CIFAR_CSV, delimiter=",", max_rows=3)
    s = load_samples(CIFAR_CSV, n_inputs=3072, n_classes=10, scale=255, samples=3,
                     layout="hwc", input_shape=(1, 3, 32, 32))
    imgs = s.x.reshape(3, 3, 32, 32)
    np.testing.assert_array_equal(imgs[:, 0].reshape(3, -1), raw[:, 1::3] / 255)
    np.testing.assert_array_equal(imgs[:, 2, 5, 7], raw[:, 1 + (5 * 32 + 7) * 3 + 2] / 255)
    assert list(s.y) == raw[:, 0].astype(int).tolist()


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
    with pytest.raises(InputError, match="cannot read") as info:
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
