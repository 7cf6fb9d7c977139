"""The planted instances: the truth holds by construction, checked independently of
every verinet engine on onnx's reference evaluator."""

from __future__ import annotations

import numpy as np
import pytest

from verinet.onnx_import.check import reference_evaluator
from verinet.selftest.planted import FAMILIES, SAT_KINDS, TWINS, generate, instance_pair
from verinet.spec.vnnlib import parse_vnnlib


def _margins(inst, x: np.ndarray) -> np.ndarray:
    y = np.asarray(reference_evaluator(inst.model)(x), dtype=np.float64)
    return np.minimum(y[:, 0] - y[:, 1], y[:, 0] - y[:, 2])


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("pair", range(len(TWINS)))
def test_twins_truth(family: str, pair: int) -> None:
    sat, unsat = instance_pair(family, pair, seed=3)
    assert (sat.kind, unsat.kind) == TWINS[pair]
    assert (sat.truth, unsat.truth) == ("sat", "unsat")
    assert sat.kind in SAT_KINDS and unsat.witness is None
    # the witness lies in the box and violates the property
    w = np.asarray(sat.witness)
    assert ((w >= sat.box_lower) & (w <= sat.box_upper)).all()
    assert _margins(sat, w[None, :])[0] < 0
    # the safe twin: uniform samples, and a dense cloud around the sat twin's witness
    rng = np.random.default_rng(0)
    lo, hi = unsat.box_lower, unsat.box_upper
    span = hi - lo
    pts = [rng.uniform(lo, hi, (300, lo.size)),
           np.clip(w + rng.uniform(-0.05, 0.05, (600, lo.size)) * span, lo, hi), w[None, :]]
    assert (_margins(unsat, np.vstack(pts)) > 0).all()
    # the violation region is tiny: uniform samples of the sat instance almost never hit it
    assert (_margins(sat, pts[0]) > 0).mean() > 0.95


def test_generate_is_deterministic_and_alternates_vnnlib_versions() -> None:
    a, b = generate(8, seed=5), generate(8, seed=5)
    assert [i.name for i in a] == [i.name for i in b]
    assert all(x.model.SerializeToString() == y.model.SerializeToString()
               for x, y in zip(a, b, strict=True))
    assert {i.family for i in a} == set(FAMILIES)
    versions = {"(declare-network" in i.vnnlib for i in a}
    assert versions == {True, False}  # both VNN-LIB 1.0 and 2.0 texts
    c = generate(8, seed=6)
    assert a[0].model.SerializeToString() != c[0].model.SerializeToString()


def test_vnnlib_describes_the_box_and_the_unsafe_set() -> None:
    for inst in generate(8, seed=1):
        prop = parse_vnnlib(inst.vnnlib, inst.box_lower.size, 3, source=inst.name)
        assert prop.terms
        for term in prop.terms:
            np.testing.assert_allclose(term.box.lower, inst.box_lower)
            np.testing.assert_allclose(term.box.upper, inst.box_upper)
        if inst.witness is not None:  # the witness meets some term's unsafe constraints
            y = np.asarray(reference_evaluator(inst.model)(
                np.asarray(inst.witness)[None, :]), dtype=np.float64)[0]
            assert min(t.unsafe.violation(y) for t in prop.terms) <= 0


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="n_instances must be >= 1"):
        generate(0)
    with pytest.raises(ValueError, match="unknown family 'rnn'"):
        instance_pair("rnn", 0, 0)
    with pytest.raises(ValueError, match="twin pair 7"):
        instance_pair("mlp", 7, 0)
