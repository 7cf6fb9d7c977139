"""A property as stacked arrays: what batched attacks and verifiers consume."""

from __future__ import annotations

import numpy as np

from verinet.spec.property import Property

PAD_B = 1e30  # padded rows: 0 @ y - 1e30 never attains the max


#: Convex weights of the pairwise row combinations :func:`stacked_terms` adds.
MIX = (0.25, 0.5, 0.75)
MIX_ROWS = 3  # terms with 2..MIX_ROWS rows get them


def _rows(t: object) -> tuple[np.ndarray, np.ndarray]:
    """A term's rows, with the pairwise convex combinations of ``MIX`` appended when it has
    2 to ``MIX_ROWS`` rows.  ``max_r (A_r y - b_r)`` is at least every convex combination
    of its rows, so the maximum (the violation) is unchanged, while a sound lower bound of
    a combination may be positive where no single row's is: two rows that contradict
    each other (an empty unsafe set) cancel in a combination."""
    A, b = t.unsafe.A, t.unsafe.b  # type: ignore[attr-defined]
    r = A.shape[0]
    if not 2 <= r <= MIX_ROWS:
        return A, b
    extra_A, extra_b = [A], [b]
    for i in range(r):
        for j in range(i + 1, r):
            for w in MIX:
                extra_A.append((w * A[i] + (1 - w) * A[j])[None])
                extra_b.append(np.array([w * b[i] + (1 - w) * b[j]]))
    return np.concatenate(extra_A), np.concatenate(extra_b)


def stacked_terms(prop: Property, combine: bool = False
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-term (lower, upper, A, b) stacked: boxes (T, n), halfspace rows (T, k, m) and
    (T, k), padded to a common count ``k`` with rows ``0 @ y <= PAD_B`` that never attain
    the max of ``A y - b``; a term with no rows gets one ``0 @ y <= 0`` (violation 0).
    ``combine`` appends convex combinations of the rows of terms with a few rows (see
    :func:`_rows`): for verifiers, which prove a term by one row's lower bound."""
    rows = [_rows(t) if combine else (t.unsafe.A, t.unsafe.b) for t in prop.terms]
    k = max(max(a.shape[0] for a, _ in rows), 1)
    m = prop.n_outputs
    T = len(prop.terms)
    A = np.zeros((T, k, m))
    b = np.full((T, k), PAD_B)
    for i, (tA, tb) in enumerate(rows):
        r = tA.shape[0]
        A[i, :r] = tA
        b[i, :r] = tb
        if r == 0:
            b[i, 0] = 0.0  # an unconstrained output set: violation 0 everywhere
    lo = np.stack([t.box.lower for t in prop.terms])
    hi = np.stack([t.box.upper for t in prop.terms])
    return lo, hi, A, b
