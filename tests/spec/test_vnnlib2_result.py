"""VNN-LIB 2.0 result files (the standard's verifier interface): ``sat`` then every
declared tensor as ``NAME TYPE [dims]`` and its values row-major; ``timed-out``."""

from __future__ import annotations

import numpy as np
import pytest

from verinet.report.vnncomp import format_result, read_witness, verdict_word
from verinet.spec.vnnlib import parse_query
from verinet.types import Counterexample, PropertyError, Status
from verinet.verify.result import Reason, VerificationResult

Q2 = """(vnnlib-version <2.0>)
(declare-network net (declare-input img float32 [1,2,2]) (declare-output logits Real [3]))
(assert (and (>= img[0,0,0] 0.0) (<= img[0,0,0] 1.0) (>= img[0,0,1] 0.0) (<= img[0,0,1] 1.0)
             (>= img[0,1,0] 0.0) (<= img[0,1,0] 1.0) (>= img[0,1,1] 0.0) (<= img[0,1,1] 1.0)))
(assert (>= logits[2] logits[0]))
"""
Q1 = """(declare-const X_0 Real)
(declare-const Y_0 Real)
(assert (>= X_0 0.0))
(assert (<= X_0 1.0))
(assert (>= Y_0 3.0))
"""


def _result(status: Status, reason: Reason, cex: Counterexample | None = None):
    return VerificationResult(status, reason, cex, (), 1.0)


def test_sat_lists_every_declared_tensor_row_major() -> None:
    q = parse_query(Q2, source="q2")
    x = np.array([0.125, 0.25, 0.5, 1.0])
    y = np.array([1.0, 2.0, 3.5])
    cex = Counterexample(x, y, y_onnx=y + 0.5, term=0, margin=0.0, confirmed=True)
    text = format_result(_result(Status.FALSIFIED, Reason.WITNESS_CONFIRMED, cex), q)
    assert text.splitlines() == ["sat", "img float32 [1,2,2]", "0.125", "0.25", "0.5", "1.0",
                                 "logits Real [3]", "1.5", "2.5", "4.0"]  # ONNX outputs


def test_verdict_words_of_the_two_versions() -> None:
    q2, q1 = parse_query(Q2, source="q2"), parse_query(Q1, source="q1")
    assert q1.variables == () and len(q2.variables) == 2
    timeout = _result(Status.UNKNOWN, Reason.TIMEOUT)
    assert format_result(timeout, q2) == "timed-out\n"
    assert format_result(timeout, q1) == format_result(timeout) == "timeout\n"
    assert format_result(_result(Status.VERIFIED, Reason.PROVEN_BY_BOUNDS), q2) == "unsat\n"
    assert verdict_word("unknown", q2) == "unknown"


def test_a_version_1_witness_keeps_the_vnncomp_form() -> None:
    q1 = parse_query(Q1, source="q1")
    cex = Counterexample(np.array([0.5]), np.array([4.0]), term=0, margin=0.0,
                         confirmed=True)
    text = format_result(_result(Status.FALSIFIED, Reason.WITNESS_CONFIRMED, cex), q1)
    assert text == "sat\n((X_0 0.5)\n (Y_0 4.0))\n"


@pytest.mark.parametrize("bad", ["[1,2]", "[3,1]"])
def test_an_index_outside_the_declared_shape_is_refused(bad: str) -> None:
    with pytest.raises(PropertyError, match=r"q2:3:18: undeclared variable img\[0,0,0\]"):
        parse_query(Q2.replace("[1,2,2]", bad), source="q2")


def test_witnesses_read_back_from_either_form() -> None:
    q2, q1 = parse_query(Q2, source="q2"), parse_query(Q1, source="q1")
    x = np.array([0.125, 0.25, 0.5, 1.0])
    cex = Counterexample(x, np.array([1.0, 2.0, 3.5]), term=0, margin=0.0, confirmed=True)
    text = format_result(_result(Status.FALSIFIED, Reason.WITNESS_CONFIRMED, cex), q2)
    np.testing.assert_array_equal(read_witness(text, q2), x)
    assert read_witness(text.replace("[1,2,2]", "[4]"), q2) is None  # unknown header
    assert read_witness("unsat\n", q2) is None
    assert read_witness(text.rsplit("\n", 3)[0], q2) is None  # a truncated file
    assert read_witness("\n".join(text.splitlines()[:4]), q2) is None  # x cut short
    one = Counterexample(np.array([0.5]), np.array([4.0]), term=0, confirmed=True)
    text1 = format_result(_result(Status.FALSIFIED, Reason.WITNESS_CONFIRMED, one), q1)
    np.testing.assert_array_equal(read_witness(text1, q1), [0.5])
