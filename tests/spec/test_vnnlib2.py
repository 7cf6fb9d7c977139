"""VNN-LIB 2.0: read beside 1.0 into the same Property (the version is told by the file),
with line and column in every error.  On the shared 2.0 instances every file parses, and
each single-network property equals its VNN-LIB 1.0 twin's exactly."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from verinet.spec.property import Property
from verinet.spec.vnnlib import (
    VnnlibSemanticError,
    VnnlibSyntaxError,
    parse_vnnlib,
    read_query,
    read_vnnlib,
)

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
V2 = SHARED / "vnnlib2"

HEAD = "(vnnlib-version <2.0>)\n"


def _net(inputs: str = "(declare-input X Real [3])", outputs: str = "(declare-output Y real [2])"
         ) -> str:
    return f"{HEAD}(declare-network N\n  {inputs}\n  {outputs}\n)\n"


def _terms(p: Property) -> list[tuple[bytes, ...]]:
    return sorted((t.box.lower.tobytes(), t.box.upper.tobytes(), t.unsafe.A.tobytes(),
                   t.unsafe.b.tobytes()) for t in p.terms)


def test_a_2_0_query_equals_its_1_0_form() -> None:
    v2 = _net() + ("(assert (and (>= X[0] 0.0) (<= X[0] 1.0)))\n"
                   "(assert (>= X[1] -0.5))\n(assert (<= X[1] 0.5))\n"
                   "(assert (== X[2] 0.25))\n"
                   "(assert (or (and (>= Y[1] Y[0])) (and (<= (- Y[0] (* 2.0 Y[1])) -1.0))))\n")
    v1 = "".join(f"(declare-const X_{i} Real)\n" for i in range(3))
    v1 += "".join(f"(declare-const Y_{j} Real)\n" for j in range(2))
    v1 += ("(assert (and (>= X_0 0.0) (<= X_0 1.0)))\n(assert (>= X_1 -0.5))\n"
           "(assert (<= X_1 0.5))\n(assert (= X_2 0.25))\n"
           "(assert (or (and (>= Y_1 Y_0)) (and (<= (- Y_0 (* 2.0 Y_1)) -1.0))))\n")
    a, b = parse_vnnlib(v2), parse_vnnlib(v1)
    assert (a.n_inputs, a.n_outputs) == (3, 2)
    assert _terms(a) == _terms(b)


def test_multi_dimensional_tensors_flatten_row_major_in_declaration_order() -> None:
    text = (f"{HEAD}(declare-network net\n (declare-input A float32 [2,3])\n"
            " (declare-input s Real [])\n (declare-output out Real [1,2])\n)\n")
    text += "".join(f"(assert (>= A[{i},{j}] {i}.{j}))\n(assert (<= A[{i},{j}] 9.0))\n"
                    for i in range(2) for j in range(3))
    text += "(assert (>= s -1.0))\n(assert (<= s 1.0))\n(assert (>= out[0,1] out[0,0]))\n"
    p = parse_vnnlib(text)
    assert (p.n_inputs, p.n_outputs) == (7, 2)
    box = p.terms[0].box
    assert box.lower.tolist() == [0.0, 0.1, 0.2, 1.0, 1.1, 1.2, -1.0]
    assert p.terms[0].unsafe.A.tolist() == [[1.0, -1.0]] and p.terms[0].unsafe.b.tolist() == [0.0]


@pytest.mark.parametrize(("text", "kind", "where", "match"), [
    (_net() + "(assert (<= X[3] 1.0))\n", VnnlibSemanticError, "6:13",
     "undeclared variable X\\[3\\]"),
    ("(vnnlib-version 2.0)\n", VnnlibSemanticError, "1:1", "angle brackets"),
    ("(vnnlib-version <3.0>)\n", VnnlibSemanticError, "1:17", "unsupported VNN-LIB version"),
    (HEAD + "(declare-const X_0 Real)\n", VnnlibSemanticError, "2:1",
     "declare-const is VNN-LIB 1.0"),
    (_net("(declare-input X int8 [3])"), VnnlibSemanticError, "3:20",
     "unsupported element type 'int8'"),
    (_net("(declare-input X Real [3,])"), VnnlibSyntaxError, "3:25", "unknown token"),
    (_net() + "(declare-network M (equal-to N) (declare-input U Real [3]) "
     "(declare-output V Real [2]))\n", VnnlibSemanticError, "6:18",
     "the inputs of network 'M' are not identified with those of 'N' \\(U\\[0\\] has no"),
    (_net() + "(assert (<= X[0] 1.0))\n(declare-network M)\n", VnnlibSemanticError, "7:1",
     "before the first assert"),
    (_net("(declare-input X Real [3])\n  (declare-hidden H Real [4] \"relu\")"),
     VnnlibSemanticError, "4:3", "declare-hidden"),
    (_net() + "(assert (!= Y[0] Y[1]))\n", VnnlibSemanticError, "6:10",
     "unsupported operator '!='"),
    (_net() + "(assert (<= (* Y[0] Y[1]) 1.0))\n", VnnlibSemanticError, "6:13",
     "product of two variables"),
], ids=["index", "version", "major", "v1 decl", "int type", "bad shape", "independent nets",
        "order", "hidden", "neq", "poly"])
def test_2_0_errors_carry_line_and_column(text, kind, where, match) -> None:
    with pytest.raises(kind, match=f"<string>:{where}: .*{match}"):
        parse_vnnlib(text)


needs_shared = pytest.mark.skipif(not V2.is_dir(), reason="../shared/vnnlib2 not present")


def _rows(name: str) -> list[dict[str, str]]:
    with open(V2 / name, newline="") as f:
        return list(csv.DictReader(f))


@needs_shared
def test_every_shared_2_0_file_parses() -> None:
    files = sorted((V2 / "vnnlib").rglob("*.vnnlib"))
    assert len(files) >= 11
    multinet = {V2 / r["vnnlib"] for r in _rows("manifest_multinet.csv")}
    for f in files:
        query = read_query(f)
        assert query.property.terms
        assert query.multi == (f in multinet), f  # details: test_vnnlib2_multinet.py


@needs_shared
def test_each_shared_2_0_property_equals_its_1_0_twin() -> None:
    v1 = {r["id"]: r for r in csv.DictReader(open(SHARED / "vnncomp" / "manifest.csv"))}
    detail = {r["id"]: r for r in _rows("instances_detail.csv")}
    rows = _rows("manifest.csv")
    assert len(rows) >= 13
    for r in rows:
        twin = v1[detail[r["id"]]["vnnlib1_twin_id"]]
        a = read_vnnlib(V2 / r["vnnlib"])
        b = read_vnnlib(SHARED / "vnncomp" / twin["vnnlib"])
        assert (a.n_inputs, a.n_outputs) == (b.n_inputs, b.n_outputs), r["id"]
        assert _terms(a) == _terms(b), r["id"]
        assert r["expected"] == twin["expected"]


@needs_shared
def test_shared_2_0_witnesses_violate_the_2_0_property() -> None:
    for r in _rows("counterexamples.csv"):
        row = next(m for m in _rows("manifest.csv") if m["id"] == r["id"])
        prop = read_vnnlib(V2 / row["vnnlib"])
        x = np.array([float(v) for v in r["x"].split()])
        y = np.array([float(v) for v in r["y_onnxruntime"].split()])
        assert any(t.box.contains(x) and t.unsafe.violation(y) <= 0 for t in prop.terms), r["id"]


def test_a_stray_quote_is_a_syntax_error() -> None:
    with pytest.raises(VnnlibSyntaxError, match="<string>:2:17: unknown token"):
        parse_vnnlib('(declare-const X_0 Real)\n(assert (<= X_0 "1))')
