"""Labelled samples for ``verinet certify``: loading and validation.

Three formats, chosen by the file extension (case-insensitive):

``.npz``
    arrays ``x`` (shape ``(N, ...)``; each sample is flattened in C order) and ``y``
    (shape ``(N,)`` or ``(N, 1)``, integer class labels).
``.npy``
    one 2-D array of shape ``(N, 1 + n)``: the label in column 0, then the ``n`` input
    values (the same layout as a CSV row).
``.csv``
    one sample per row, comma-separated: the label first, then the ``n`` input values
    (e.g. DeepPAC's ``mnist_100.csv`` with 0-255 pixels).  A first line whose first
    field is not a number is a header and is skipped.

Inputs are returned in *raw* input space (any ``--mean/--std`` normalisation is part of
the network), as float64, after dividing by ``scale`` when given, flattened in the
model's input order.  ``layout`` says how each stored sample's values are ordered:
``"chw"`` (the default) means already in the model's flat input order, taken as they
are; ``"hwc"`` means (row, column, channel) interleaved, as in DeepPAC's
``cifar_100.csv``, and each sample is transposed to the (channel, row, column) order of
a model with an NCHW input of shape ``(1, C, H, W)`` (``input_shape``).  They must lie in
``[0, 1]`` because every L-inf ball is clipped to that domain.  Every problem is reported
as a one-line :class:`~verinet.types.InputError` naming the file and the sample (0-based
index in the file) or line (1-based) at fault.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from verinet.types import InputError, frozen_array

logger = logging.getLogger(__name__)

FORMATS = (".npz", ".npy", ".csv")
LAYOUTS = ("chw", "hwc")


@dataclass(frozen=True)
class Samples:
    """Validated samples: ``x`` (N, n) float64 raw inputs in [0, 1], ``y`` (N,) int64
    labels, ``source`` the file they came from and ``start`` the file index of ``x[0]``
    (sample ``i`` here is sample ``start + i`` of the file).  Arrays are read-only."""

    x: np.ndarray
    y: np.ndarray
    source: str
    start: int = 0

    def __post_init__(self) -> None:
        x = frozen_array(self.x)
        y = frozen_array(self.y, dtype=np.int64).reshape(-1)
        if x.ndim != 2 or x.shape[0] != y.shape[0]:
            raise InputError(f"{self.source}: x has shape {x.shape} but y has {y.shape[0]} labels")
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y)

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def n_inputs(self) -> int:
        return int(self.x.shape[1])

    @property
    def indices(self) -> np.ndarray:
        """The index in the file of every sample."""
        return np.arange(self.start, self.start + len(self), dtype=np.int64)


# ----------------------------------------------------------------------------- checks


def validate_eps(eps: object) -> float:
    """Return ``eps`` as a float after checking it is finite and in ``[0, 1]`` (the
    input domain is ``[0, 1]``, so a larger L-inf radius covers all of it)."""
    try:
        e = float(eps)  # type: ignore[arg-type]  # any number-like; anything else is refused
    except (TypeError, ValueError):
        raise InputError(f"eps must be a number, got {eps!r}") from None
    if not math.isfinite(e) or e < 0 or e > 1:
        raise InputError(f"eps must be finite and in [0, 1] (inputs live in [0, 1]), got {e}")
    return e


def _check_options(scale: float | None, samples: int | None, start: int) -> None:
    if scale is not None and not (math.isfinite(float(scale)) and float(scale) > 0):
        raise InputError(f"scale must be a positive finite number, got {scale}")
    if samples is not None and samples <= 0:
        raise InputError(f"the number of samples must be positive, got {samples}")
    if start < 0:
        raise InputError(f"the first sample index must be >= 0, got {start}")


def layout_order(layout: str | None, input_shape: tuple[int, ...] | None,
                 n_inputs: int) -> np.ndarray | None:
    """The permutation taking a stored sample to the model's flat input order (index
    ``k`` of the model's input is value ``order[k]`` of the stored sample), or None when
    the samples are stored in the model's order (``layout`` ``"chw"`` or None)."""
    if layout is None or layout == "chw":
        return None
    if layout not in LAYOUTS:
        raise InputError(f"unknown data layout {layout!r}: expected one of {', '.join(LAYOUTS)}")
    if input_shape is None:
        raise InputError(f"data layout {layout!r} needs the model's input shape")
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 4 or shape[0] != 1:
        raise InputError(
            f"data layout {layout!r} needs a model with a rank-4 NCHW input (1, C, H, W), "
            f"this one takes {shape}"
        )
    c, h, w = shape[1:]
    if c * h * w != n_inputs:
        raise InputError(
            f"data layout {layout!r}: the model's input shape {shape} has {c * h * w} values "
            f"but the model has {n_inputs} inputs"
        )
    return np.arange(c * h * w).reshape(h, w, c).transpose(2, 0, 1).reshape(-1)


def _check_file(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if not p.exists():
        raise InputError(f"data file not found: {p}")
    if not p.is_file():
        raise InputError(f"data path is not a file: {p}")
    if p.suffix.lower() not in FORMATS:
        raise InputError(
            f"unknown data format '{p.suffix}' for {p}: expected one of {', '.join(FORMATS)}"
        )
    return p


def _first_bad(mask: np.ndarray) -> tuple[int, ...]:
    """Index of the first True entry of ``mask`` (C order) as a tuple."""
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(mask)), mask.shape))


def _check_numeric(a: np.ndarray, what: str, p: Path) -> None:
    if a.dtype.kind not in "biuf":
        raise InputError(f"{p}: {what} must be numeric, got dtype {a.dtype}")


# ----------------------------------------------------------------------------- readers


def _read_npz(p: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(p, allow_pickle=False) as z:
            missing = [k for k in ("x", "y") if k not in z.files]
            if missing:
                raise InputError(
                    f"{p}: missing array(s) {', '.join(missing)} (found: "
                    f"{', '.join(z.files) or 'none'}); expected 'x' and 'y'"
                )
            x, y = z["x"], z["y"]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise InputError(f"cannot read {p} as .npz: {_one_line(e)}") from None
    _check_numeric(x, "x", p)
    _check_numeric(y, "y", p)
    if x.ndim == 0 or y.ndim == 0:
        raise InputError(f"{p}: x and y must have a sample axis, got shapes {x.shape}, {y.shape}")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise InputError(f"{p}: y has shape {y.shape}; expected ({x.shape[0]},), one per sample")
    flat = x.reshape(x.shape[0], int(np.prod(x.shape[1:], dtype=np.int64)))
    return flat.astype(np.float64), y.astype(np.float64)


def _read_npy(p: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        a = np.load(p, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise InputError(f"cannot read {p} as .npy: {_one_line(e)}") from None
    if not isinstance(a, np.ndarray):
        raise InputError(f"{p}: expected one array, found an archive (use the .npz suffix)")
    _check_numeric(a, "the array", p)
    if a.ndim != 2 or a.shape[1] < 2:
        raise InputError(
            f"{p}: expected a 2-D array (N, 1 + n) with the label in column 0, got shape {a.shape}"
        )
    a = a.astype(np.float64)
    return a[:, 1:], a[:, 0]


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _read_csv(p: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with p.open("r", encoding="utf-8-sig") as f:
            first = f.readline()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read {p} as .csv: {_one_line(e)}") from None
    # A header names the columns: its first (label) field is not a number.  A data row
    # with a bad value further on is not mistaken for one and is reported below.
    header = int(bool(first.strip()) and not _is_number(first.split(",")[0]))
    if header:
        logger.info("%s: skipping the header line", p)
    try:
        with warnings.catch_warnings():  # an empty file warns; it is reported below
            warnings.simplefilter("ignore", UserWarning)
            a = np.loadtxt(p, delimiter=",", skiprows=header, ndmin=2, dtype=np.float64,
                           encoding="utf-8-sig")
    except (ValueError, UnicodeDecodeError):
        _diagnose_csv(p, header)  # raises a precise InputError
        raise InputError(f"cannot parse {p} as .csv") from None
    if a.size == 0:
        return np.zeros((0, 0)), np.zeros(0)
    if a.shape[1] < 2:
        raise InputError(f"{p}: rows need a label and at least one value, got {a.shape[1]} column")
    return a[:, 1:], a[:, 0]


def _diagnose_csv(p: Path, header: int) -> None:
    """Find the first malformed row (ragged or non-numeric) and raise an InputError."""
    width = None
    sample = 0
    with p.open("r", encoding="utf-8-sig", errors="replace") as f:
        for line_no, line in enumerate(f, start=1):
            if line_no <= header or not line.strip():
                continue
            fields = line.rstrip("\r\n").split(",")
            for col, t in enumerate(fields):
                if not _is_number(t):
                    raise InputError(
                        f"{p}: sample {sample} (line {line_no}), column {col}: "
                        f"not a number: {t.strip()[:20]!r}"
                    )
            if width is None:
                width = len(fields)
            elif len(fields) != width:
                raise InputError(
                    f"{p}: sample {sample} (line {line_no}) has {len(fields)} columns, "
                    f"the first row has {width}"
                )
            sample += 1


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


_READERS = {".npz": _read_npz, ".npy": _read_npy, ".csv": _read_csv}


# ----------------------------------------------------------------------------- loading


def _check_values(p: Path, x: np.ndarray, y: np.ndarray, n_inputs: int, n_classes: int) -> None:
    """Check counts, features, finiteness and labels of the raw arrays."""
    if y.shape[0] == 0:
        raise InputError(f"{p}: contains no samples")
    if x.shape[1] != n_inputs:
        raise InputError(
            f"{p}: samples have {x.shape[1]} input values but the model has {n_inputs} inputs"
        )
    bad = ~np.isfinite(x)
    if bad.any():
        i, j = _first_bad(bad)
        raise InputError(f"{p}: sample {i}, input {j} is {x[i, j]} (values must be finite)")
    bad_y = ~np.isfinite(y) | (y != np.round(y))
    if bad_y.any():
        i = _first_bad(bad_y)[0]
        raise InputError(f"{p}: sample {i}: label {y[i]} is not an integer")
    out = (y < 0) | (y >= n_classes)
    if out.any():
        i = _first_bad(out)[0]
        raise InputError(
            f"{p}: sample {i}: label {int(y[i])} is out of range [0, {n_classes}) for a model "
            f"with {n_classes} outputs"
        )


def _check_domain(p: Path, x: np.ndarray, scale: float | None) -> None:
    bad = (x < 0) | (x > 1)
    if not bad.any():
        return
    i, j = _first_bad(bad)
    hint = (
        f"; pass --scale {_suggest_scale(x)} to divide the values" if scale is None
        else f" after dividing by scale {scale}"
    )
    raise InputError(
        f"{p}: sample {i}, input {j} = {x[i, j]:g} is outside [0, 1]{hint} "
        "(raw inputs must lie in [0, 1]; use --mean/--std for normalisation)"
    )


def _suggest_scale(x: np.ndarray) -> str:
    top = float(np.max(x))
    return "255" if 1 < top <= 255 else "S (the largest possible value)"


def load_samples(
    path: str | os.PathLike[str],
    *,
    n_inputs: int,
    n_classes: int,
    scale: float | None = None,
    samples: int | None = None,
    start: int = 0,
    layout: str | None = None,
    input_shape: tuple[int, ...] | None = None,
) -> Samples:
    """Load and validate labelled samples (see the module docstring for the formats).

    Every sample of the file is checked (feature count == ``n_inputs``, finite values,
    integer labels in ``[0, n_classes)``, values in ``[0, 1]`` after dividing by
    ``scale``); then samples ``start .. start + samples - 1`` are returned (all from
    ``start`` when ``samples`` is None; fewer when the file ends first).  Errors name
    inputs by their position in the file.

    ``layout`` ``"hwc"`` reorders every sample from (row, column, channel) to the
    (channel, row, column) order of the model's NCHW ``input_shape`` ``(1, C, H, W)``
    (e.g. ``model.network.input_shape``); ``"chw"`` or None (the default) keeps the
    stored order.
    """
    _check_options(scale, samples, start)
    order = layout_order(layout, input_shape, n_inputs)
    p = _check_file(path)
    x, y = _READERS[p.suffix.lower()](p)
    _check_values(p, x, y, n_inputs, n_classes)
    if scale is not None:
        x = x / float(scale)
    _check_domain(p, x, scale)
    n = y.shape[0]
    if start >= n:
        raise InputError(f"{p}: first sample {start} is past the end ({n} samples)")
    stop = n if samples is None else min(n, start + samples)
    if samples is not None and start + samples > n:
        logger.warning("%s: only %d of the %d requested samples exist from index %d (the "
                       "file has %d): running %d", p, stop - start, samples, start, n,
                       stop - start)
    x = x[start:stop]
    if order is not None:
        x = x[:, order]
    logger.info("loaded samples %d..%d of %s (%d inputs, layout %s)", start, stop - 1, p,
                n_inputs, layout or "chw")
    return Samples(x, y[start:stop].astype(np.int64), str(p), start)
