"""VNN-COMP result files: ``sat`` + witness, ``unsat``, ``timeout``, ``unknown``, ``error``."""

from __future__ import annotations

import os

import numpy as np

from verinet.report.atomic import atomic_write
from verinet.verify.result import VerificationResult


def _num(v: float) -> str:
    return repr(float(v))


def format_result(result: VerificationResult) -> str:
    """The file content: the verdict line and, after ``sat``, ``((X_i v) ... (Y_j v))``.

    X values are the exact witness (float32-representable, inside the box); Y values are
    the original ONNX model's outputs on it when available, else the IR's.
    """
    line = result.vnncomp
    if line != "sat":
        return line + "\n"
    cex = result.counterexample
    assert cex is not None
    y = cex.y_onnx if cex.y_onnx is not None else cex.y
    pairs = [f"(X_{i} {_num(v)})" for i, v in enumerate(np.asarray(cex.x))]
    pairs += [f"(Y_{j} {_num(v)})" for j, v in enumerate(np.asarray(y))]
    body = "\n ".join(pairs)
    return f"sat\n({body})\n"


def write_result_file(path: str | os.PathLike[str], text: str) -> None:
    """Write atomically (temp file + rename) so a reader never sees half a file; a
    failure is a one-line :class:`~verinet.types.InputError` and leaves no temp file."""
    atomic_write(path, text)
