"""The certify engine: sandwich soundness against a brute-force exact radius, the
sandwich invariant, the bracket's bookkeeping."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.nets import float32_layers, random_layers, relu_network, relu_onnx
from tests.oracle import exact_radius
from verinet.certify.bracket import Bracket, Sample, confirm_witness
from verinet.certify.crown_radius import crown_radius
from verinet.certify.engine import CertifyOptions, certify_sample
from verinet.certify.result import SampleReport, SampleStatus, Witness
from verinet.ir.chain import to_chain
from verinet.onnx_import.check import onnx_evaluator
from verinet.runs.dataset import certify
from verinet.types import Box, InputError, Sandwich, SoundnessError
from verinet.verify.views import ModelViews


def _tiny(seed: int, n_in: int, hidden: list[int], n_out: int):
    rng = np.random.default_rng(seed)
    layers = float32_layers(random_layers(rng, [n_in, *hidden, n_out]))
    return relu_network(layers), onnx_evaluator(relu_onnx(layers)), rng


FAST = CertifyOptions(radius=True, timeout=10.0, tolerance=1e-3,
                      attacks=("deepfool", "fmn", "pgd"))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), n_in=st.integers(2, 3),
       hidden=st.lists(st.integers(2, 5), min_size=1, max_size=2), n_out=st.integers(2, 3))
def test_sandwich_brackets_the_exact_radius(seed: int, n_in: int, hidden: list[int],
                                            n_out: int) -> None:
    net, onnx_eval, rng = _tiny(seed, n_in, hidden, n_out)
    x0 = rng.uniform(0.0, 1.0, n_in)
    label = int(np.argmax(net.evaluate(x0)))
    rep = certify_sample(net, onnx_eval, 0, x0, label, FAST)
    chain = to_chain(net)
    exact = exact_radius(chain, x0, label, Box(np.zeros(n_in), np.ones(n_in)))
    assert rep.radius is not None
    if rep.status is SampleStatus.MISCLASSIFIED:  # a tie at x0
        assert exact == 0.0
        return
    lo, hi = rep.radius.lower, rep.radius.upper
    assert lo <= exact + 1e-7, (lo, exact)
    assert exact <= hi + 1e-9, (exact, hi)
    if math.isfinite(exact):
        assert math.isfinite(hi)
    if rep.witness is not None:
        w = rep.witness
        y = net.evaluate(w.x)
        others = np.delete(y, label)
        assert others.max() >= y[label]
        assert np.max(np.abs(w.x - x0)) <= hi + 1e-12
        y_onnx = onnx_eval(w.x[None, :])[0]
        assert np.delete(y_onnx, label).max() >= y_onnx[label]
    if rep.exact:  # within the tolerance, or robust on the whole domain
        assert hi - lo <= FAST.tolerance or (math.isinf(hi) and math.isinf(exact))


def test_radius_is_exact_on_a_small_net() -> None:
    net, onnx_eval, rng = _tiny(3, 3, [6, 6], 3)
    found = 0
    for _ in range(5):
        x0 = rng.uniform(0, 1, 3)
        label = int(np.argmax(net.evaluate(x0)))
        rep = certify_sample(net, onnx_eval, 0, x0, label, FAST)
        assert rep.radius is not None
        found += rep.exact
    assert found >= 4


def test_eps_verdicts_match_the_exact_radius() -> None:
    net, onnx_eval, rng = _tiny(11, 2, [5], 3)
    chain = to_chain(net)
    for _ in range(6):
        x0 = rng.uniform(0, 1, 2)
        label = int(np.argmax(net.evaluate(x0)))
        exact = exact_radius(chain, x0, label, Box(np.zeros(2), np.ones(2)))
        for eps in (0.5 * exact, 1.5 * exact):
            if not math.isfinite(eps) or eps > 1:
                continue
            rep = certify_sample(net, onnx_eval, 0, x0, label,
                                 CertifyOptions(eps=eps, timeout=10.0))
            if rep.status is SampleStatus.VERIFIED:
                assert eps < exact
            if rep.status is SampleStatus.FALSIFIED:
                assert eps >= exact - 1e-9
                assert rep.witness is not None and rep.witness.distance <= eps


def test_misclassified_sample_gets_radius_zero() -> None:
    net, onnx_eval, rng = _tiny(5, 3, [4], 3)
    x0 = rng.uniform(0, 1, 3)
    wrong = (int(np.argmax(net.evaluate(x0))) + 1) % 3
    rep = certify_sample(net, onnx_eval, 7, x0, wrong, CertifyOptions(eps=0.1))
    assert rep.status is SampleStatus.MISCLASSIFIED
    assert rep.radius is not None and rep.radius.lower == rep.radius.upper == 0.0
    assert rep.exact and rep.index == 7 and not rep.correct


def test_crown_radius_is_a_lower_bound() -> None:
    net, _, rng = _tiny(8, 3, [6], 3)
    chain = to_chain(net)
    dom = (np.zeros(3), np.ones(3))
    for _ in range(5):
        x0 = rng.uniform(0, 1, 3)
        label = int(np.argmax(net.evaluate(x0)))
        exact = exact_radius(chain, x0, label, Box(*dom))
        r = crown_radius(chain, x0, label, min(exact, 1.0), dom)
        assert r <= exact + 1e-9


# ----------------------------------------------------------------------------- invariant


def test_bracket_refuses_a_proof_above_a_witness() -> None:
    b = Bracket()
    b.offer(Witness(np.zeros(2), 1, 0.3, "pgd"))
    with pytest.raises(SoundnessError, match="adversarial example at distance 0.3"):
        b.prove_robust(0.4, "crown")
    with pytest.raises(SoundnessError, match=r"milp proves radius >= 0\.31 but pgd found"):
        b.prove_lower(0.31, "milp", tol=1e-6)
    b.prove_lower(0.3 + 1e-7, "milp", tol=1e-6)  # within the solver's tolerance: clamped
    assert b.lower == 0.3


def test_bracket_refuses_a_witness_below_a_proof() -> None:
    b = Bracket()
    b.prove_robust(0.2, "crown")
    with pytest.raises(SoundnessError, match="below the certified radius"):
        b.offer(Witness(np.zeros(2), 1, 0.1, "fmn"))


def test_sandwich_and_sample_report_invariants() -> None:
    with pytest.raises(SoundnessError,
                       match=r"lower bound 0\.5 \(milp\) exceeds upper bound 0\.4 \(pgd\)"):
        Sandwich(0.5, 0.4, "milp", "pgd")
    with pytest.raises(SoundnessError,
                       match=r"verified at eps 0\.3 but an adversarial example lies at 0\.2"):
        SampleReport(0, 1, 1, SampleStatus.VERIFIED, eps=0.3,
                     radius=Sandwich(0.1, 0.2, "crown", "pgd"))
    with pytest.raises(SoundnessError, match="falsified without a witness"):
        SampleReport(0, 1, 1, SampleStatus.FALSIFIED, eps=0.3)
    with pytest.raises(SoundnessError,
                       match=r"witness at distance 0\.1 lies below the certified radius 0\.2"):
        SampleReport(0, 1, 1, SampleStatus.UNKNOWN, radius=Sandwich(0.2, 0.3, "a", "b"),
                     witness=Witness(np.zeros(2), 0, 0.1, "pgd"))


def test_a_crossing_sandwich_is_raised_not_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    """A (simulated) unsound lower bound must surface as SoundnessError."""
    import verinet.certify.engine as E

    for seed in range(50):  # a sample whose true radius is small
        net, onnx_eval, rng = _tiny(seed, 2, [4], 2)
        x0 = rng.uniform(0, 1, 2)
        label = int(np.argmax(net.evaluate(x0)))
        if exact_radius(to_chain(net), x0, label, Box(np.zeros(2), np.ones(2))) < 0.3:
            break
    monkeypatch.setattr(E, "crown_radius", lambda *a, **k: 0.9)
    with pytest.raises(SoundnessError,
                       match=r"crown proves robustness at eps 0\.9 but fmn found an adversarial"):
        certify_sample(net, onnx_eval, 0, x0, label, FAST)


def test_witness_replay_rejects_a_correct_point() -> None:
    net, onnx_eval, rng = _tiny(4, 2, [3], 2)
    x0 = rng.uniform(0, 1, 2)
    label = int(np.argmax(net.evaluate(x0)))
    s = Sample(x0, label, (np.zeros(2), np.ones(2)))
    assert confirm_witness(net, onnx_eval, s, x0, "none") is None


def test_options_are_validated() -> None:
    with pytest.raises(InputError, match=r"eps must be a finite number >= 0, got -0\.1"):
        CertifyOptions(eps=-0.1)
    with pytest.raises(InputError, match="eps must be a finite number >= 0, got nan"):
        CertifyOptions(eps=float("nan"))
    with pytest.raises(InputError, match="give an eps, ask for radii, or both"):
        CertifyOptions()
    with pytest.raises(InputError, match="timeout must be a positive number of seconds, got 0"):
        CertifyOptions(eps=0.1, timeout=0)


def test_run_calls_back_after_every_sample() -> None:
    net, onnx_eval, rng = _tiny(6, 3, [4], 3)
    x = rng.uniform(0, 1, (3, 3))
    y = np.argmax(np.stack([net.evaluate(v) for v in x]), axis=1)
    seen: list[int] = []
    rep = certify(net, onnx_eval, x, y, CertifyOptions(eps=0.05, timeout=5.0),
                  on_sample=lambda r: seen.append(len(r.samples)))
    assert seen == [1, 2, 3]
    assert [s.index for s in rep.samples] == [0, 1, 2]
    assert ModelViews(net).chain is not None


def _schedule(monkeypatch: pytest.MonkeyPatch, lower: float, upper: float,
              provable: float) -> list[tuple[float, float]]:
    """The probes ``_bisection_stage`` makes on a bracket [lower, upper] against a verifier
    that proves every eps <= ``provable`` and times out above it."""
    from verinet.certify import engine
    from verinet.types import Status
    from verinet.verify.deadline import Deadline

    net, onnx_eval, rng = _tiny(3, 3, [4], 3)
    x0 = np.full(3, 0.5)
    sample = Sample(x0, 0, (np.zeros(3), np.ones(3)))
    ctx = engine._Ctx(net, ModelViews(net), onnx_eval, sample,
                      CertifyOptions(radius=True, timeout=60.0), Deadline(60.0), rng)
    ctx.bracket.prove_robust(lower, "crown")
    ctx.bracket.offer(Witness(x0 + upper, 1, upper, "fmn"))
    probes: list[tuple[float, float]] = []

    def fake(c: engine._Ctx, eps: float, fraction: float) -> Status:
        probes.append((eps, fraction))
        if eps <= provable:
            c.bracket.prove_robust(eps, "verify:proven by branch and bound")
            return Status.VERIFIED
        return Status.UNKNOWN

    monkeypatch.setattr(engine, "_verify_at", fake)
    engine._bisection_stage(ctx)
    assert ctx.bracket.lower <= provable
    assert ctx.bracket.upper - ctx.bracket.lower <= 1e-3 or \
        provable - ctx.bracket.lower <= 1e-3
    return probes


def test_a_wide_bracket_climbs_from_the_certified_end(monkeypatch: pytest.MonkeyPatch) -> None:
    probes = _schedule(monkeypatch, 0.02, 0.08, provable=0.031)
    eps = [p for p, _ in probes]
    assert eps[0] == pytest.approx(0.022)  # 10% above the certified end, not at the witness
    assert eps[1] == pytest.approx(0.022 * 1.2)  # the step doubled after the proof
    assert max(eps) < 0.05  # never a probe in the upper half of the bracket
    assert [f for _, f in probes[:2]] == [0.25, 0.25]
    # a timeout capped the probes below the witness: its 75% probe is never tried
    assert 0.75 not in [f for _, f in probes]


def test_a_narrow_bracket_probes_just_below_the_witness(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    probes = _schedule(monkeypatch, 0.10, 0.12, provable=0.115)
    assert probes[0] == (pytest.approx(0.12 - 0.98e-3), 0.75)
    # then bisection with a third of the time; at the end (capped onto the certified end)
    # at most one retry of a timed-out probe with all of it
    shares = [f for _, f in probes[1:]]
    if shares[-1] == 1.0:
        shares.pop()
    assert shares and all(f == pytest.approx(0.34) for f in shares)
    # once the witness probe is out, probes bisect what is left
    assert probes[1][0] == pytest.approx(0.5 * (0.10 + 0.12 - 0.98e-3))


def test_timed_out_probes_are_retried_with_the_time_left(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    """A verifier that needs the whole remaining time for 0.025 < eps <= 0.03: once the
    shared-time probes have capped the search, the lowest timed-out probe is tried again
    with all of it (fraction 1), and each proof lets the next one be retried."""
    from verinet.certify import engine
    from verinet.types import Status
    from verinet.verify.deadline import Deadline

    net, onnx_eval, rng = _tiny(3, 3, [4], 3)
    x0 = np.full(3, 0.5)
    sample = Sample(x0, 0, (np.zeros(3), np.ones(3)))
    ctx = engine._Ctx(net, ModelViews(net), onnx_eval, sample,
                      CertifyOptions(radius=True, timeout=60.0), Deadline(60.0), rng)
    ctx.bracket.prove_robust(0.02, "crown")
    ctx.bracket.offer(Witness(x0 + 0.08, 1, 0.08, "fmn"))
    probes: list[tuple[float, float]] = []

    def fake(c: engine._Ctx, eps: float, fraction: float) -> Status:
        probes.append((eps, fraction))
        if eps <= 0.025 or (eps <= 0.03 and fraction == 1.0):
            c.bracket.prove_robust(eps, "verify:proven by branch and bound")
            return Status.VERIFIED
        return Status.UNKNOWN

    monkeypatch.setattr(engine, "_verify_at", fake)
    engine._bisection_stage(ctx)
    shared = [p for p, f in probes if f < 1.0]
    retried = [p for p, f in probes if f == 1.0]
    assert retried and all(p in shared for p in retried)  # only probes that timed out
    assert max(p for p, f in probes if f < 1.0 and p <= 0.025) < ctx.bracket.lower <= 0.03
    assert probes[-1][1] == 1.0 and probes[-1][0] > 0.03  # it stops at the first failure
    assert 0.03 - ctx.bracket.lower <= 2e-3  # and the proofs went on up to the verifier's


def test_a_grid_round_starts_only_when_it_fits() -> None:
    """refine_grid skips a round the previous one's time says will not fit."""
    import time

    from verinet.certify.crown_radius import refine_grid
    from verinet.verify.deadline import Deadline

    calls: list[float] = []

    def slow(eps: np.ndarray) -> np.ndarray:
        calls.append(float(eps[-1]))
        time.sleep(0.2)
        return eps <= 0.3

    lo, _ = refine_grid(slow, 1.0, rounds=3, grid=4, deadline=Deadline(0.3))
    assert len(calls) == 1 and lo == 0.25  # 0.2 s spent, 0.1 s left: round 2 would not fit
    calls.clear()
    lo, _ = refine_grid(slow, 1.0, rounds=3, grid=4, deadline=Deadline(5.0))
    assert len(calls) == 3 and 0.25 < lo <= 0.3
