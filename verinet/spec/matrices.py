"""A property as stacked arrays: what batched attacks and verifiers consume."""

from __future__ import annotations

import numpy as np

from verinet.spec.property import Property

PAD_B = 1e30  # padded rows: 0 @ y - 1e30 never attains the max


def stacked_terms(prop: Property) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-term (lower, upper, A, b) stacked: boxes (T, n), halfspace rows (T, k, m) and
    (T, k), padded to a common count ``k`` with rows ``0 @ y <= PAD_B`` that never attain
    the max of ``A y - b``; a term with no rows gets one ``0 @ y <= 0`` (violation 0)."""
    k = max(max(t.unsafe.A.shape[0] for t in prop.terms), 1)
    m = prop.n_outputs
    T = len(prop.terms)
    A = np.zeros((T, k, m))
    b = np.full((T, k), PAD_B)
    for i, t in enumerate(prop.terms):
        r = t.unsafe.A.shape[0]
        A[i, :r] = t.unsafe.A
        b[i, :r] = t.unsafe.b
        if r == 0:
            b[i, 0] = 0.0  # an unconstrained output set: violation 0 everywhere
    lo = np.stack([t.box.lower for t in prop.terms])
    hi = np.stack([t.box.upper for t in prop.terms])
    return lo, hi, A, b
