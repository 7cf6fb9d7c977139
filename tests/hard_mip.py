"""A MIP that HiGHS cannot finish for minutes, for interrupt tests."""

from __future__ import annotations

import numpy as np

from verinet.milp.backend import HighsBackend


def market_split(seed: int = 0, m: int = 4, n: int = 40) -> HighsBackend:
    """A market-split MIP (Cornuejols-Dawande): tiny and far beyond a minute for HiGHS."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 100, (m, n)).astype(float)
    b = np.floor(a.sum(axis=1) / 2)
    be = HighsBackend()
    x = be.add_vars(np.zeros(n), np.ones(n), integer=True)
    sp = be.add_vars(np.zeros(m), np.full(m, np.inf))
    sm = be.add_vars(np.zeros(m), np.full(m, np.inf))
    rows = np.zeros((m, 2 * m + n))
    rows[:, x] = a
    rows[np.arange(m), sp] = 1.0
    rows[np.arange(m), sm] = -1.0
    be.add_rows(rows, b, b)
    be.set_objective(np.concatenate([sp, sm]), np.ones(2 * m))
    be.set_time_limit(60.0)
    return be


def big_lp(seed: int = 0, n: int = 1500) -> HighsBackend:
    """A dense random LP (``n`` rows and columns) that takes HiGHS's simplex seconds."""
    rng = np.random.default_rng(seed)
    be = HighsBackend()
    x = be.add_vars(np.zeros(n), np.full(n, 10.0))
    A = rng.uniform(0.0, 1.0, (n, n))
    be.add_rows(A, np.full(n, -np.inf), A.sum(axis=1) * rng.uniform(0.2, 0.8, n))
    be.set_objective(x, -rng.uniform(0.5, 1.5, n))
    be.set_time_limit(120.0)
    return be
