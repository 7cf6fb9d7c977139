"""Every relaxation is sound on random intervals for every parameter value: activations
(dense samples of ``[l, u]``) and MaxPool (random points of the window box, including
ties, degenerate intervals and padding)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from verinet.bounds.fp import FLOAT64
from verinet.bounds.graph.activations import ClipRule, LeakyReluRule, ReluRule, SmoothRule
from verinet.bounds.graph.maxpool import MaxPoolRule
from verinet.bounds.graph.windows import Window
from verinet.ir import ops as O

RULES = [ReluRule(), LeakyReluRule(0.0), LeakyReluRule(0.2), LeakyReluRule(3.0),
         ClipRule(-0.5, 0.7), ClipRule(None, 0.3), ClipRule(-0.2, None), ClipRule(0.5, -0.5),
         SmoothRule("sigmoid"), SmoothRule("tanh")]


def _intervals(rng: np.random.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    a = rng.normal(0, 3, n) * rng.choice([1e-13, 1e-3, 1.0, 5.0], n)
    b = a + np.abs(rng.normal(0, 3, n)) * rng.choice([0.0, 1e-13, 0.1, 1.0, 4.0], n)
    return torch.tensor(a), torch.tensor(b)


@pytest.mark.parametrize("rule", RULES, ids=repr)
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_activation_relaxation_is_sound(rule: object, seed: int) -> None:
    rng = np.random.default_rng(seed)
    lo, hi = _intervals(rng, 64)
    p = None
    if rule.n_params:  # type: ignore[attr-defined]
        p = torch.tensor(rng.uniform(0, 1, size=(rule.n_params, 64)))  # type: ignore[attr-defined]
        p[:, :8] = torch.tensor(rng.integers(0, 2, size=(rule.n_params, 8)), dtype=p.dtype)  # type: ignore[attr-defined]
    for q in (None, p):
        r = rule.relax(lo, hi, q, FLOAT64)  # type: ignore[attr-defined]
        assert torch.all(r.a_lo >= 0) and torch.all(r.a_up >= 0)
        t = torch.linspace(0, 1, 201, dtype=torch.float64).unsqueeze(1)
        z = lo + t * (hi - lo)
        f = rule.f(z)  # type: ignore[attr-defined]
        # exact-arithmetic lines, checked up to the rounding of their own evaluation
        # (the engine's magnitude term X covers it)
        tol = FLOAT64(2.0 * (r.a_lo.abs() + r.a_up.abs()) * z.abs() + r.c_lo.abs()
                      + r.c_up.abs() + f.abs())
        assert torch.all(r.a_lo * z + r.c_lo <= f + tol), rule
        assert torch.all(r.a_up * z + r.c_up >= f - tol), rule
    out_lo, out_hi = rule.interval(lo, hi, FLOAT64)  # type: ignore[attr-defined]
    assert torch.all(out_lo <= rule.f(lo)) and torch.all(out_hi >= rule.f(hi))  # type: ignore[attr-defined]


def test_relu_crown_choice_is_adaptive() -> None:
    lo, hi = torch.tensor([-1.0, -3.0, 1.0, -2.0]), torch.tensor([2.0, 1.0, 2.0, -1.0])
    r = ReluRule().relax(lo, hi, None, FLOAT64)
    assert r.a_lo.tolist() == [1.0, 0.0, 1.0, 0.0]
    assert r.a_up.tolist() == pytest.approx([2 / 3, 0.25, 1.0, 0.0])


def _pool(k: int, s: int, pads: tuple[int, int, int, int], d: int,
          hw: tuple[int, int]) -> tuple[MaxPoolRule, Window]:
    op = O.MaxPool((k, k), (s, s), pads, (d, d), False)
    w = Window.of(op, (1, *hw))
    return MaxPoolRule(w, fan_in=w.kk + 1), w


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), k=st.integers(1, 3), s=st.integers(1, 2),
       pad=st.integers(0, 1), d=st.integers(1, 2), ties=st.booleans(), flat=st.booleans())
def test_maxpool_relaxation_is_sound(seed: int, k: int, s: int, pad: int, d: int, ties: bool,
                                     flat: bool) -> None:
    rng = np.random.default_rng(seed)
    pad = min(pad, k - 1)
    rule, win = _pool(k, s, (pad,) * 4, d, (5, 5))
    B = 3
    lo = rng.normal(0, 1, size=(B, 1, 1, 5, 5))
    if ties:
        lo = np.round(lo)  # many equal lower bounds
    width = np.abs(rng.normal(0, 1, size=lo.shape))
    if flat:
        width[rng.uniform(size=lo.shape) < 0.5] = 0.0  # degenerate intervals
    if ties:
        width = np.round(width)
    hi = lo + width
    lo_t, hi_t = torch.tensor(lo), torch.tensor(hi)
    P = rule.n_params
    params = [None, torch.tensor(rng.uniform(0, 1, size=(P, B, 1, 1) + win.out_hw)),
              torch.tensor(rng.integers(0, 2, size=(P, B, 1, 1) + win.out_hw), dtype=torch.float64)]
    x = lo + rng.uniform(size=(400,) + lo.shape) * (hi - lo)
    x[:100] = np.where(rng.integers(0, 2, size=(100,) + lo.shape).astype(bool), hi, lo)
    flat = torch.tensor(x.reshape((400 * B, 1, 5, 5)))
    y = rule.f(flat).reshape((400, B, 1, 1) + win.out_hw)                # (S, B, K, C, Ho, Wo)
    cols = win.unfold(flat, 0.0).reshape((400, B, 1, 1, win.kk) + win.out_hw)
    for p in params:
        r = rule.relax_pool(lo_t, hi_t, p)
        assert torch.allclose(r.w.sum(dim=-3), torch.ones((), dtype=torch.float64))
        lower = (r.w * cols).sum(dim=-3)
        upper = r.t.squeeze(-3) * (r.e_k * cols).sum(dim=-3) + r.const
        assert torch.all(lower <= y + 1e-12)
        assert torch.all(upper >= y - 1e-12)
    out_lo, out_hi = rule.interval(lo_t[:, 0], hi_t[:, 0], FLOAT64)      # (B, C, Ho, Wo)
    assert torch.all(out_lo <= y[:, :, 0]) and torch.all(out_hi >= y[:, :, 0])


def test_maxpool_is_exact_when_one_element_dominates() -> None:
    rule, _ = _pool(2, 2, (0, 0, 0, 0), 1, (2, 2))
    lo = torch.tensor([[[[[5.0, 0.0], [1.0, -2.0]]]]])
    hi = torch.tensor([[[[[6.0, 4.0], [5.0, 0.0]]]]])
    r = rule.relax_pool(lo, hi, None)
    assert float(r.const.reshape(-1)[0]) == 0.0 and float(r.t.reshape(-1)[0]) == 1.0
    assert r.w.reshape(-1).tolist() == [1.0, 0.0, 0.0, 0.0]
