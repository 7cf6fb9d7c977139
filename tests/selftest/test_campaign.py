"""The soundness campaign's checks (benchmarks/soundness_campaign.py) on a few cases:
the shipped engines give no violation, and lying engines are caught."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from verinet.selftest.engines import ENGINES, Answer
from verinet.spec.matrices import stacked_terms

PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "soundness_campaign.py"


@pytest.fixture(scope="module")
def campaign():
    spec = importlib.util.spec_from_file_location("soundness_campaign", PATH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_shipped_engines_have_no_violation(campaign) -> None:
    out = campaign._run_job(0, 12, 7, 1.0)
    assert out["cases"] == 12 and out["violations"] == []
    assert out["counts"]["cases/chain"] + out["counts"]["cases/graph"] == 12
    assert out["counts"]["cases/graph"] >= 1


def test_lying_engines_are_caught(campaign, monkeypatch) -> None:
    monkeypatch.setattr(campaign, "COMPLETE", ("liar",))
    monkeypatch.setitem(ENGINES, "liar", lambda s, t: Answer("unsat", 0.0))
    # every bound engine claims a huge lower bound
    for name in ("interval", "crown"):
        monkeypatch.setitem(ENGINES, name, lambda s, t: Answer(
            "unknown", 0.0, lower=np.full(stacked_terms(s.prop)[2].shape[:2], 1e6)))
    out = campaign._run_job(0, 10, 7, 1.0)
    engines = {v["engine"] for v in out["violations"]}
    assert {"interval", "crown", "liar"} <= engines
    problems = [p for v in out["violations"] for p in v["problems"]]
    assert any("above a sampled value" in p for p in problems)
    assert any("unsat, but the exact minimum" in p for p in problems)
    assert not any("crash" in p for p in problems)
