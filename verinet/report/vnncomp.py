"""VNN-COMP result files: ``sat`` + witness, ``unsat``, ``timeout``, ``unknown``, ``error``.

For a VNN-LIB 1.0 property the witness is ``((X_i v) ... (Y_j v))``.  For a 2.0 query
the file follows the standard's verifier interface (``verifier_interface.tex``): the
verdict ``sat`` / ``unsat`` / ``unknown`` / ``timed-out``, and after ``sat`` every
declared tensor in declaration order as a line ``NAME TYPE [d1,...]`` followed by one
value per line, row-major (a later network's inputs repeat the shared input they are
identified with).
"""

from __future__ import annotations

import os
import re

import numpy as np

from verinet.report.atomic import atomic_write
from verinet.spec.query import Query
from verinet.verify.result import VerificationResult


def _num(v: float) -> str:
    return repr(float(v))


def verdict_word(verdict: str, query: Query | None = None) -> str:
    """``timeout`` is ``timed-out`` in a VNN-LIB 2.0 result."""
    return "timed-out" if verdict == "timeout" and query is not None and query.variables \
        else verdict


def format_result(result: VerificationResult, query: Query | None = None) -> str:
    """The file content: the verdict line and, after ``sat``, the witness (the 2.0 form
    when ``query`` is a VNN-LIB 2.0 query, see the module doc).

    X values are the exact witness (float32-representable, inside the box); Y values are
    the original ONNX model's outputs on it when available, else the IR's.
    """
    line = verdict_word(result.vnncomp, query)
    if line != "sat":
        return line + "\n"
    cex = result.counterexample
    assert cex is not None
    y = cex.y_onnx if cex.y_onnx is not None else cex.y
    if query is not None and query.variables:
        x = np.asarray(cex.x)
        out = ["sat"]
        for v in query.variables:
            vals = (x if v.kind == "X" else np.asarray(y))[v.offset: v.offset + v.size]
            out.append(v.header)
            out += [_num(e) for e in vals]
        return "\n".join(out) + "\n"
    pairs = [f"(X_{i} {_num(v)})" for i, v in enumerate(np.asarray(cex.x))]
    pairs += [f"(Y_{j} {_num(v)})" for j, v in enumerate(np.asarray(y))]
    body = "\n ".join(pairs)
    return f"sat\n({body})\n"


def read_witness(text: str, query: Query) -> np.ndarray | None:
    """The shared input ``x`` of a ``sat`` result file in either form (None when the file
    holds no complete witness, or a 2.0 file gives one input element two values)."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "sat":
        return None
    n = query.property.n_inputs
    x = np.full(n, np.nan)
    if query.variables:
        heads = {v.header: v for v in query.variables}
        k = 1
        while k < len(lines):
            v = heads.get(lines[k].strip())
            if v is None:
                return None
            vals = np.array([float(t) for t in lines[k + 1: k + 1 + v.size]])
            if vals.size != v.size:
                return None
            k += 1 + v.size
            if v.kind == "X":
                seg = x[v.offset: v.offset + v.size]
                if not np.all(np.isnan(seg) | (seg == vals)):
                    return None
                x[v.offset: v.offset + v.size] = vals
    else:
        for name, val in re.findall(r"\(X_(\d+)\s+(\S+?)\)", text):
            if int(name) < n:
                x[int(name)] = float(val)
    return None if np.isnan(x).any() else x


def write_result_file(path: str | os.PathLike[str], text: str) -> None:
    """Write atomically (temp file + rename) so a reader never sees half a file; a
    failure is a one-line :class:`~verinet.types.InputError` and leaves no temp file."""
    atomic_write(path, text)
