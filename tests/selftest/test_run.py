"""Scoring: the self-test catches lying engines (fakes), and the shipped engines give no
wrong answer on a quick subset of the planted instances."""

from __future__ import annotations

import numpy as np
import pytest

from verinet.selftest import run as st
from verinet.selftest.engines import ENGINES, Answer
from verinet.selftest.planted import generate
from verinet.types import SoundnessError


@pytest.fixture(scope="module")
def pair():
    return generate(2, seed=0)  # mlp bump (sat) and bump-low (unsat)


def _scores(monkeypatch, insts, engine) -> list[st.Outcome]:
    monkeypatch.setitem(ENGINES, "fake", engine)
    return [o for inst in insts for o in st.run_instance(inst, ["fake"], 1.0)]


def test_unsat_on_a_planted_counterexample_is_wrong(monkeypatch, pair) -> None:
    outs = _scores(monkeypatch, pair, lambda s, t: Answer("unsat", 0.0))
    assert [o.score for o in outs] == ["wrong", "right"]
    assert "planted witness" in outs[0].note
    rep = st.SelftestReport(tuple(outs), ("fake",))
    assert rep.wrong == (outs[0],)
    assert "WRONG: fake on mlp-0-bump" in rep.table()
    (score,) = rep.scores()
    assert (score.right, score.wrong, score.sat_found, score.sat_total) == (1, 1, 0, 1)


def test_sat_on_a_safe_twin_is_wrong(monkeypatch, pair) -> None:
    w = np.asarray(pair[0].witness)
    outs = _scores(monkeypatch, pair, lambda s, t: Answer("sat", 0.0, witness=w))
    assert [o.score for o in outs] == ["right", "wrong"]
    assert "safe by construction" in outs[1].note


def test_witnesses_are_checked_independently(monkeypatch, pair) -> None:
    inst = pair[0]
    inside = np.asarray(inst.box_lower).copy()  # in the box, but far from the bump
    outside = np.asarray(inst.box_upper) + 1.0
    (o1,) = _scores(monkeypatch, [inst], lambda s, t: Answer("sat", 0.0, witness=inside))
    (o2,) = _scores(monkeypatch, [inst], lambda s, t: Answer("sat", 0.0, witness=outside))
    assert o1.score == o2.score == "wrong"
    assert "reference evaluator gives the witness margin" in o1.note
    assert "outside the input box" in o2.note


def test_unsound_bounds_are_wrong_even_when_the_verdict_is_unknown(monkeypatch,
                                                                   pair) -> None:
    monkeypatch.setattr(st, "BOUND_ENGINES", ("fake",))
    # lower bounds of the margin rows far above any value: unsound
    outs = _scores(monkeypatch, pair[:1],
                   lambda s, t: Answer("unknown", 0.0, lower=np.full((2, 1), 1e3)))
    assert outs[0].score == "wrong" and "lower bound" in outs[0].note
    ok = _scores(monkeypatch, pair[:1],
                 lambda s, t: Answer("unknown", 0.0, lower=np.full((2, 1), -1e3)))
    assert ok[0].score == "unknown"


def test_crashes_and_soundness_errors(monkeypatch, pair) -> None:
    def crash(s, t):
        raise RuntimeError("boom")

    def unsound(s, t):
        raise SoundnessError("lower 2 > upper 1")

    (c,) = _scores(monkeypatch, pair[:1], crash)
    assert (c.score, c.note) == ("error", "RuntimeError: boom")
    (u,) = _scores(monkeypatch, pair[:1], unsound)
    assert u.score == "wrong" and "soundness check" in u.note


def test_unknown_engine_name(pair) -> None:
    with pytest.raises(ValueError, match="unknown engine.*nope"):
        list(st.run_selftest(pair, ["nope"]))


def test_quick_subset_every_engine_never_wrong() -> None:
    """One twin pair of every family, every engine: planted counterexamples are found or
    answered unknown, never unsat; safe twins are never sat; no engine crashes."""
    insts = generate(8, seed=0)
    outs = list(st.run_selftest(insts, timeout=1.5))
    rep = st.SelftestReport(tuple(outs), tuple(ENGINES))
    assert not rep.wrong and not rep.errors, rep.table()
    assert len(outs) == len(insts) * len(ENGINES)
    for o in outs:
        if o.truth == "sat":
            assert o.verdict in ("sat", "unknown", "n/a"), o
        else:
            assert o.verdict in ("unsat", "unknown", "n/a"), o
    by = {(o.instance, o.engine): o for o in outs}
    # the exact MILP decides the small fully connected twins, the planted one included
    for inst in insts:
        if inst.family == "mlp":
            assert by[inst.name, "milp"].score == "right", by[inst.name, "milp"]
    # a Sigmoid network has no exact MILP encoding: n/a unless the bounds decide first
    sig = [o for o in outs if o.engine == "milp" and o.family == "sigmoid"]
    assert any(o.score == "n/a" for o in sig) and all(
        o.score in ("n/a", "right") for o in sig)
    # chain engines apply to the fully connected family only
    assert {o.score == "n/a" for o in outs
            if o.engine == "chain-crown" and o.family != "mlp"} == {True}


def test_the_parser_lists_every_engine_in_order():
    from verinet.selftest.names import ENGINE_NAMES

    assert tuple(ENGINES) == ENGINE_NAMES
