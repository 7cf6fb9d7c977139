"""Tests of the VNN-LIB reader (verinet.spec.vnnlib).

1. real VNN-COMP files from ../shared/vnncomp (skipped when that folder is absent);
2. hand-written files with hand-computed boxes and halfspaces;
3. a Hypothesis round trip: random formula -> VNN-LIB text -> Property, checked pointwise;
4. malformed files: error class, message and line:column.
"""

from __future__ import annotations

import csv
import functools
import gzip
import hashlib
import pickle
import random
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from verinet.spec import (
    Property,
    VnnlibSemanticError,
    VnnlibSyntaxError,
    parse_vnnlib,
    read_vnnlib,
)
from verinet.spec.vnnlib_dnf import MAX_DNF_TERMS
from verinet.types import InputError, PropertyError

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "vnncomp"
ACAS = SHARED / "vnnlib" / "acasxu"


def _shared_params(pattern: str) -> list[Any]:
    """Paths under SHARED matching ``pattern`` as test parameters (one skip if absent)."""
    if not SHARED.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"{SHARED} is absent"))]
    files = sorted(SHARED.glob(pattern))
    return [pytest.param(f, id=str(f.relative_to(SHARED))) for f in files]


def _need_shared() -> None:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent")


@functools.lru_cache(maxsize=None)
def _read_shared(path: Path) -> Property:
    """Each shared file is parsed once per test session (with its network's dimensions)."""
    return read_vnnlib(path, *_dims(path))


def _dims(path: Path) -> tuple[int, int]:
    """(inputs, outputs) of the networks a shared VNN-LIB file is written for."""
    return (5, 5) if path.parent.name == "acasxu" else (784, 10)


def _rows(prop: Property, k: int) -> list[tuple[list[float], float]]:
    t = prop.terms[k]
    return [(list(a), float(b)) for a, b in zip(t.unsafe.A, t.unsafe.b, strict=True)]


def _unit(j: int, n: int = 5, scale: float = 1.0) -> np.ndarray:
    e = np.zeros(n)
    e[j] = scale
    return e


# ============================================================ 1. shared VNN-COMP files


@pytest.mark.parametrize("path", _shared_params("vnnlib/*/*.vnnlib"))
def test_shared_file_parses(path: Path) -> None:
    n_in, n_out = _dims(path)
    prop = _read_shared(path)  # passes n_inputs, n_outputs
    assert (prop.n_inputs, prop.n_outputs) == (n_in, n_out)
    for t in prop.terms:
        assert np.all(np.isfinite(t.box.lower)) and np.all(t.box.lower <= t.box.upper)
        assert t.unsafe.A.shape[1] == n_out and t.unsafe.A.shape[0] >= 1


@pytest.mark.parametrize(
    "path", _shared_params("vnnlib/mnist*/*.vnnlib") + _shared_params("vnnlib/eran*/*.vnnlib")
)
def test_shared_mnist_is_robustness_property(path: Path) -> None:
    prop = _read_shared(path)
    assert (prop.n_inputs, prop.n_outputs) == (784, 10)
    assert len(prop.terms) == 9
    box = prop.terms[0].box
    assert all(t.box is box for t in prop.terms)  # one shared Box object
    assert all(t.unsafe.A.shape == (1, 10) for t in prop.terms)
    # every row is y_label - y_j <= 0 for one j != label: the label has +1 everywhere
    label = int(np.flatnonzero(np.all(np.stack([t.unsafe.A[0] for t in prop.terms]) == 1, 0))[0])
    header = re.search(r"label: (\d+)", path.read_text())
    if header:  # the mnistfc files name their label in a comment
        assert label == int(header.group(1))
    expected = Property.robustness(box, label, 10)
    got = sorted((t.unsafe.A.tobytes(), t.unsafe.b.tobytes()) for t in prop.terms)
    assert got == sorted((t.unsafe.A.tobytes(), t.unsafe.b.tobytes()) for t in expected.terms)
    # the input box is an L-inf ball of radius eps clipped to [0, 1]
    eps = float(re.search(r"_(0\.\d+)\.vnnlib$", path.name).group(1))  # type: ignore[union-attr]
    assert np.all(box.lower >= 0.0) and np.all(box.upper <= 1.0)
    assert np.all(box.upper - box.lower <= 2 * eps + 1e-7)
    assert np.any(box.upper - box.lower > 2 * eps - 1e-6)  # not all pixels clipped


def test_shared_mnist_parses_fast() -> None:
    _need_shared()
    path = SHARED / "vnnlib" / "mnistfc_2021" / "prop_0_0.03.vnnlib"
    text = path.read_text()
    parse_vnnlib(text)  # warm up
    best = min(_timed(lambda: parse_vnnlib(text, 784, 10)) for _ in range(3))
    assert best < 0.1, f"parsing a 784-input file took {best:.3f} s"


def _timed(f: Any) -> float:
    start = time.perf_counter()
    f()
    return time.perf_counter() - start


ACAS_BOX_1 = ([0.6, -0.5, -0.5, 0.45, -0.5], [0.679857769, 0.5, 0.5, 0.5, -0.45])
ACAS_BOX_3 = (
    [-0.303531156, -0.009549297, 0.493380324, 0.3, 0.3],
    [-0.298552812, 0.009549297, 0.5, 0.5, 0.5],
)
ACAS_BOX_4 = (
    [-0.303531156, -0.009549297, 0.0, 0.318181818, 0.083333333],
    [-0.298552812, 0.009549297, 0.0, 0.5, 0.166666667],
)


def _acas(name: str) -> Property:
    _need_shared()
    return read_vnnlib(ACAS / f"{name}.vnnlib", n_inputs=5, n_outputs=5)


def _box_is(prop: Property, k: int, box: tuple[list[float], list[float]]) -> None:
    assert prop.terms[k].box.lower.tolist() == box[0]
    assert prop.terms[k].box.upper.tolist() == box[1]


def test_acas_prop_1() -> None:
    prop = _acas("prop_1")
    assert len(prop.terms) == 1
    _box_is(prop, 0, ACAS_BOX_1)
    assert _rows(prop, 0) == [([-1.0, 0, 0, 0, 0], -3.991125645861615)]  # y0 >= 3.99...


def test_acas_prop_2_coc_maximal() -> None:
    prop = _acas("prop_2")
    assert len(prop.terms) == 1
    _box_is(prop, 0, ACAS_BOX_1)
    A = prop.terms[0].unsafe.A  # (<= Y_j Y_0): y_j - y_0 <= 0
    assert A.tolist() == [(_unit(j) - _unit(0)).tolist() for j in range(1, 5)]
    assert prop.terms[0].unsafe.b.tolist() == [0.0] * 4


def test_acas_prop_3_and_4_coc_minimal() -> None:
    for name, box in (("prop_3", ACAS_BOX_3), ("prop_4", ACAS_BOX_4)):
        prop = _acas(name)
        assert len(prop.terms) == 1
        _box_is(prop, 0, box)
        A = prop.terms[0].unsafe.A  # (<= Y_0 Y_j): y_0 - y_j <= 0
        assert A.tolist() == [(_unit(0) - _unit(j)).tolist() for j in range(1, 5)]
    prop4 = _acas("prop_4")
    assert prop4.terms[0].box.lower[2] == prop4.terms[0].box.upper[2] == 0.0  # X_2 fixed


def test_acas_prop_5_and_9_one_box_four_terms() -> None:
    for name, target in (("prop_5", 4), ("prop_9", 3)):
        prop = _acas(name)
        assert len(prop.terms) == 4
        assert len({id(t.box) for t in prop.terms}) == 1
        others = [j for j in range(5) if j != target]
        for t, j in zip(prop.terms, others, strict=True):  # (<= Y_j Y_target)
            assert t.unsafe.A.tolist() == [(_unit(j) - _unit(target)).tolist()]
            assert t.unsafe.b.tolist() == [0.0]


def test_acas_prop_6_two_boxes_eight_terms() -> None:
    prop = _acas("prop_6")
    assert len(prop.terms) == 8
    boxes = [t.box for t in prop.terms]
    assert len({id(b) for b in boxes}) == 2
    assert len({(b.lower.tobytes(), b.upper.tobytes()) for b in boxes}) == 2
    assert all(b is boxes[0] for b in boxes[:4]) and all(b is boxes[4] for b in boxes[4:])
    # the boxes differ only in X_1: the two sides of the intruder heading
    assert boxes[0].lower[1] == 0.11140846 and boxes[0].upper[1] == 0.499999896
    assert boxes[4].lower[1] == -0.499999896 and boxes[4].upper[1] == -0.11140846
    for b in (boxes[0], boxes[4]):
        assert b.lower[[0, 2, 3, 4]].tolist() == [-0.129289109, -0.499999896, -0.5, -0.5]
        assert b.upper[[0, 2, 3, 4]].tolist() == [0.700434925, -0.499204121, 0.5, 0.5]
    for k, t in enumerate(prop.terms):  # (<= Y_j Y_0), j = 1..4, for each box
        assert t.unsafe.A.tolist() == [(_unit(k % 4 + 1) - _unit(0)).tolist()]


def test_acas_prop_7_two_terms_three_rows() -> None:
    prop = _acas("prop_7")
    assert len(prop.terms) == 2 and prop.terms[0].box is prop.terms[1].box
    for t, j in zip(prop.terms, (3, 4), strict=True):  # strong left / strong right is minimal
        assert t.unsafe.A.tolist() == [(_unit(j) - _unit(i)).tolist() for i in range(3)]


class _SafeUnpickler(pickle.Unpickler):
    """Loads the ``.vnnlib.compiled`` caches of the VNN-COMP scripts: numpy arrays only."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("numpy", "dtype"):
            return np.dtype
        if name == "_frombuffer" and module in ("numpy._core.numeric", "numpy.core.numeric"):
            return _frombuffer
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: str) -> np.ndarray:
    array: np.ndarray = np.frombuffer(buf, dtype=dtype)
    return array.reshape(shape, order=order)  # type: ignore[call-overload]


@pytest.mark.parametrize("compiled", _shared_params("vnnlib/*/*.vnnlib.compiled"))
def test_shared_file_matches_vnncomp_compiled_cache(compiled: Path) -> None:
    """Same terms as the official VNN-COMP reader (its pickled ``.compiled`` output)."""
    path = compiled.with_suffix("")
    with compiled.open("rb") as f:
        try:
            spec, digest = _SafeUnpickler(f).load()
        except (pickle.UnpicklingError, AttributeError, ImportError) as e:
            pytest.skip(f"cannot load {compiled.name} with this numpy: {e}")
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    reference = [
        (np.array(box, dtype=float), np.asarray(mat, float), np.asarray(rhs, float))
        for box, disjuncts in spec
        for mat, rhs in disjuncts
    ]
    prop = _read_shared(path)
    assert len(prop.terms) == len(reference)
    for t, (box, mat, rhs) in zip(prop.terms, reference, strict=True):
        # the reference derives its bounds with float arithmetic: equal up to rounding
        np.testing.assert_allclose(t.box.lower, box[:, 0], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(t.box.upper, box[:, 1], rtol=1e-12, atol=1e-15)
        np.testing.assert_array_equal(t.unsafe.A, mat)
        np.testing.assert_allclose(t.unsafe.b, rhs, rtol=1e-12, atol=0)


def _csv(name: str) -> list[dict[str, str]]:
    with (SHARED / name).open(newline="") as f:
        return list(csv.DictReader(f))


def test_manifest_instances_structure() -> None:
    """Every instance's file parses to the input/output form recorded in the shared set."""
    _need_shared()
    manifest = {r["id"]: r for r in _csv("manifest.csv")}
    details = _csv("instances_detail.csv")
    assert len(details) == len(manifest) > 0
    for row in details:
        inst = manifest[row["id"]]
        path = SHARED / inst["vnnlib"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == row["vnnlib_sha256"]
        prop = _read_shared(path)
        boxes = list({id(t.box): t.box for t in prop.terms}.values())
        boxes_form = re.fullmatch(r"disjunction of (\d+) boxes", row["vnnlib_input_form"])
        n_boxes = int(boxes_form.group(1)) if boxes_form else 1
        assert boxes_form or row["vnnlib_input_form"] == "single box"
        assert len(boxes) == n_boxes, row["id"]
        form = row["vnnlib_output_form"]
        rows = [t.unsafe.A.shape[0] for t in prop.terms]
        if m := re.fullmatch(r"or\((\d+) clauses; max (\d+) atoms/clause\)", form):
            assert len(prop.terms) == n_boxes * int(m.group(1)), row["id"]
            assert max(rows) == int(m.group(2)), row["id"]
        else:
            atoms = form.split(" & ")
            assert rows == [len(atoms)] * n_boxes, row["id"]
            for atom, a in zip(atoms, prop.terms[0].unsafe.A, strict=True):
                assert np.count_nonzero(a) == (1 if atom == "atom(Y-vs-const)" else 2)
        if inst["expected"] == "unsat":  # the box centre is a point of the input set
            assert all(b.contains(b.center) for b in boxes)


def test_shared_counterexamples_violate_the_parsed_property() -> None:
    """Each published witness lies in a term's box and its output in that term's polytope."""
    _need_shared()
    manifest = {r["id"]: r for r in _csv("manifest.csv")}
    rows = _csv("counterexamples.csv")
    assert rows
    for row in rows:
        inst = manifest[row["id"]]
        assert inst["expected"] == "sat"
        prop = _read_shared(SHARED / inst["vnnlib"])
        x = np.array(row["x"].split(), dtype=float)
        y = np.array(row["y_onnxruntime"].split(), dtype=float)
        assert prop.violated_by(x, y) >= 0, row["id"]


# ============================================================ 2. hand-written semantics

HEADER = "".join(f"(declare-const X_{i} Real)\n" for i in range(2)) + "".join(
    f"(declare-const Y_{j} Real)\n" for j in range(3)
)
BOX = "(assert (>= X_0 -1))\n(assert (<= X_0 1))\n(assert (>= X_1 0))\n(assert (<= X_1 1))\n"


def _parse(body: str, header: str = HEADER, **kw: Any) -> Property:
    return parse_vnnlib(header + body, source="t.vnnlib", **kw)


def test_nested_or_and_mixing_inputs_and_outputs() -> None:
    prop = _parse(
        "(assert (>= X_0 -1)) (assert (<= X_0 1))\n"
        "(assert (or\n"
        "  (and (>= X_1 0) (<= X_1 0.5) (<= Y_0 Y_1))\n"
        "  (and (>= X_1 0.5) (<= X_1 1)\n"
        "       (or (>= Y_2 3.5e0) (<= (+ Y_0 (* 2 Y_1)) -1)))))\n"
    )
    assert len(prop.terms) == 3
    t1, t2, t3 = prop.terms
    assert t1.box.lower.tolist() == [-1, 0] and t1.box.upper.tolist() == [1, 0.5]
    assert t2.box.lower.tolist() == [-1, 0.5] and t2.box.upper.tolist() == [1, 1]
    assert t2.box is t3.box
    assert _rows(prop, 0) == [([1, -1, 0], 0.0)]
    assert _rows(prop, 1) == [([0, 0, -1], -3.5)]
    assert _rows(prop, 2) == [([1, 2, 0], -1.0)]


def test_output_versus_constant_both_orders_and_arithmetic() -> None:
    prop = _parse(
        BOX
        + "(assert (<= 2.5 Y_0))\n"  # -y0 <= -2.5
        "(assert (>= 1 Y_1))\n"  # y1 <= 1
        "(assert (>= Y_2 3.99))\n"  # -y2 <= -3.99
        "(assert (<= (- Y_0 Y_1) (- 2)))\n"  # y0 - y1 <= -2
        "(assert (>= (- Y_2) (* Y_0 3 0.5)))\n"  # -y2 - 1.5 y0 >= 0
        "(assert (<= (+ Y_0 1 (* -1 Y_0) Y_1) 4))\n"  # y1 <= 3 (Y_0 cancels)
        "(assert (< Y_0 Y_2))\n"  # strict read as non-strict: y0 - y2 <= 0
        "(assert (> Y_0 0))\n"  # -y0 <= 0
        "(assert (<= (* 2 (+ Y_0 1) 0.5) 4))\n"  # y0 + 1 <= 4
    )
    assert len(prop.terms) == 1
    assert _rows(prop, 0) == [
        ([-1, 0, 0], -2.5),
        ([0, 1, 0], 1.0),
        ([0, 0, -1], -3.99),
        ([1, -1, 0], -2.0),
        ([1.5, 0, 1], 0.0),
        ([0, 1, 0], 3.0),
        ([1, 0, -1], 0.0),
        ([-1, 0, 0], 0.0),
        ([1, 0, 0], 3.0),
    ]


def test_scientific_notation_and_number_forms() -> None:
    prop = _parse(
        "(assert (>= X_0 -3.2E+02)) (assert (<= X_0 1e-5))\n"
        "(assert (>= X_1 .5)) (assert (<= X_1 5.))\n"
        "(assert (<= Y_0 +2.5e-1))\n"
    )
    box = prop.terms[0].box
    assert box.lower.tolist() == [-320.0, 0.5] and box.upper.tolist() == [1e-5, 5.0]
    assert _rows(prop, 0) == [([1, 0, 0], 0.25)]
    exact = _parse(BOX + "(assert (>= Y_0 0.1))")  # decimal -> double exactly like float()
    assert exact.terms[0].unsafe.b[0] == -float("0.1")


def test_comments_crlf_bom_and_whitespace() -> None:
    text = (
        "; leading comment (with an unbalanced paren\n"
        + HEADER
        + BOX
        + "(assert ; comment inside an expression )\n"
        "   (<=\tY_0 ; another\n Y_1))\n"
        "; trailing comment without newline"
    )
    lf = parse_vnnlib(text)
    crlf = parse_vnnlib("\ufeff" + text.replace("\n", "\r\n"))
    cr = parse_vnnlib(text.replace("\n", "\r"))
    for p in (lf, crlf, cr):
        assert len(p.terms) == 1 and _rows(p, 0) == [([1, -1, 0], 0.0)]
        assert p.terms[0].box.upper.tolist() == [1, 1]
    with pytest.raises(VnnlibSemanticError, match=r"^<string>:4:13: undeclared variable Y_7"):
        parse_vnnlib("\ufeff;c\r\n\r\n(declare-const X_0 Real)\r\n(assert (<= Y_7 1))")


def test_several_asserts_keep_tightest_bounds() -> None:
    prop = _parse(
        "(assert (>= X_0 -5)) (assert (>= X_0 -1)) (assert (>= X_0 -3))\n"
        "(assert (<= X_0 4)) (assert (and (<= X_0 1) (<= X_0 2)))\n"
        "(assert (<= 0 X_1 0.75 2))\n"  # a chain: 0 <= X_1 <= 0.75 <= 2
        "(assert (<= Y_0 1))\n"
    )
    assert prop.terms[0].box.lower.tolist() == [-1, 0]
    assert prop.terms[0].box.upper.tolist() == [1, 0.75]


def test_input_fixed_to_one_value() -> None:
    prop = _parse("(assert (= X_0 0.25)) (assert (<= X_1 0)) (assert (>= X_1 0.0))")
    box = prop.terms[0].box
    assert box.lower.tolist() == box.upper.tolist() == [0.25, 0.0]
    assert prop.terms[0].unsafe.A.shape == (0, 3)  # outputs unconstrained


def test_contradictory_disjunct_is_dropped() -> None:
    prop = _parse(
        BOX + "(assert (or (and (>= X_0 2) (<= Y_0 0)) (and (<= X_1 0.5) (<= Y_1 0))))"
    )
    assert len(prop.terms) == 1
    assert prop.terms[0].box.upper.tolist() == [1, 0.5]
    assert _rows(prop, 0) == [([0, 1, 0], 0.0)]


def test_all_disjuncts_empty_is_an_error() -> None:
    with pytest.raises(VnnlibSemanticError, match=r"^t\.vnnlib:6:1: property's input set is empty"):
        _parse(BOX + "(assert (or (>= X_0 2) (<= X_0 -2)))")
    with pytest.raises(VnnlibSemanticError, match="input set is empty"):
        _parse(BOX + "(assert (<= 1 0))")


def test_constant_atoms_and_identical_terms() -> None:
    prop = _parse(BOX + "(assert (or (<= Y_0 1) (<= Y_0 1) (and (<= 0 1) (<= Y_0 1))))")
    assert len(prop.terms) == 1 and _rows(prop, 0) == [([1, 0, 0], 1.0)]
    prop = _parse(BOX + "(assert (and (<= Y_0 1) (<= Y_0 1) (<= Y_0 Y_0)))")
    assert _rows(prop, 0) == [([1, 0, 0], 1.0)]
    prop = _parse(BOX + "(assert (or (<= Y_0 1) (>= 0 1)))")  # false disjunct vanishes
    assert len(prop.terms) == 1


def test_equality_on_outputs_is_two_rows() -> None:
    prop = _parse(BOX + "(assert (= Y_0 (* 2 Y_1)))")
    assert _rows(prop, 0) == [([1, -2, 0], 0.0), ([-1, 2, 0], 0.0)]


def test_ignored_smtlib_commands() -> None:
    prop = _parse(
        "(set-info :status unsat) (set-logic QF_LRA)\n"
        + BOX
        + "(assert (<= Y_0 1)) (check-sat) (get-model) (exit)"
    )
    assert len(prop.terms) == 1


def test_deep_nesting_within_the_limit() -> None:
    depth = 190
    formula = "(and " * depth + "(<= Y_0 " + "(+ 1 " * 5 + "0" + ")" * 5 + ")" + ")" * depth
    prop = _parse(BOX + f"(assert {formula})")
    assert _rows(prop, 0) == [([1, 0, 0], 5.0)]


def test_dimension_check_passes_when_matching() -> None:
    prop = _parse(BOX, n_inputs=2, n_outputs=3)
    assert (prop.n_inputs, prop.n_outputs) == (2, 3)


def test_read_vnnlib_plain_gzip_and_missing(tmp_path: Path) -> None:
    text = HEADER + BOX + "(assert (<= Y_0 Y_1))\n"
    plain = tmp_path / "p.vnnlib"
    plain.write_bytes(b"\xef\xbb\xbf" + text.encode())
    packed = tmp_path / "p.vnnlib.gz"
    packed.write_bytes(gzip.compress(text.encode()))
    for path in (plain, str(packed)):
        prop = read_vnnlib(path, n_inputs=2, n_outputs=3)
        assert _rows(prop, 0) == [([1, -1, 0], 0.0)]
    with pytest.raises(InputError, match="cannot read VNN-LIB file"):
        read_vnnlib(tmp_path / "missing.vnnlib")
    bad = tmp_path / "bad.vnnlib"
    bad.write_bytes(b"(declare-const X_0 Real)\n(assert \xff)")
    with pytest.raises(VnnlibSyntaxError, match=r"bad\.vnnlib:2:9: file is not valid UTF-8"):
        read_vnnlib(bad)
    broken = tmp_path / "broken.vnnlib"
    broken.write_text(HEADER + "(assert (<= Y_0 Y_1)")
    with pytest.raises(VnnlibSyntaxError, match=rf"^{re.escape(str(broken))}:6:1: "):
        read_vnnlib(broken)


def test_dnf_blowup_is_refused_quickly() -> None:
    alternatives = " ".join(f"(<= Y_0 {k})" for k in range(400))
    start = time.perf_counter()
    with pytest.raises(VnnlibSemanticError, match=rf"^t\.vnnlib:11:1: .*more than {MAX_DNF_TERMS}"):
        _parse(BOX + f"(assert (or {alternatives}))\n" + f"(assert (or {alternatives}))")
    assert time.perf_counter() - start < 1.0


# ============================================================ 3. hypothesis round trip

Formula = tuple[Any, ...]
"""``("x", i, op, c)``: x_i op c; ``("y", coeffs, op, c)``: coeffs . y op c;
``("and", [formulas])``, ``("or", [formulas])``."""

GRID = [k / 4 for k in range(-8, 9)]  # constants: exact in binary, so equality is exact
OPS = ["<=", ">=", "<", ">", "="]
FLIP = {"<=": ">=", ">=": "<=", "<": ">", ">": "<", "=": "="}


def _holds(op: str, lhs: np.ndarray, rhs: float) -> np.ndarray:
    """Closed semantics: strict comparisons are read as non-strict."""
    if op == "=":
        return lhs == rhs
    return lhs <= rhs if op in ("<=", "<") else lhs >= rhs


def _evaluate(f: Formula, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Truth of ``f`` at every point ``(xs[k], ys[k])``, directly from the formula."""
    kind = f[0]
    if kind == "and":
        return np.logical_and.reduce([_evaluate(g, xs, ys) for g in f[1]])
    if kind == "or":
        return np.logical_or.reduce([_evaluate(g, xs, ys) for g in f[1]])
    if kind == "x":
        return _holds(f[2], xs[:, f[1]], f[3])
    return _holds(f[2], ys @ np.array(f[1], dtype=float), f[3])


def _members(prop: Property, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """``exists term: x in box and A y <= b`` at every point, from the parsed property."""
    inside = np.zeros(len(xs), dtype=bool)
    for t in prop.terms:
        in_box = np.all((xs >= t.box.lower) & (xs <= t.box.upper), axis=1)
        inside |= in_box & (t.unsafe.violation(ys) <= 0)
    return inside


def _number(v: float, style: int) -> str:
    """``v`` written in one of several VNN-LIB number forms (all exact)."""
    if style == 0:
        return repr(v)
    if style == 1:
        return f"{v:e}"
    if style == 2:
        return f"{v:.4E}"
    if style == 3 and v == int(v):
        return f"{int(v)}."
    if style == 3 and 0 < abs(v) < 1:
        return ("-" if v < 0 else "") + repr(abs(v))[1:]  # -.25
    return repr(v)


def _render(f: Formula, rnd: random.Random) -> str:
    """VNN-LIB text of ``f``, choosing among equivalent spellings at random."""
    kind = f[0]
    if kind in ("and", "or"):
        sep = rnd.choice([" ", "\n  ", " ; note (\n "])
        return f"({kind}{sep}" + sep.join(_render(g, rnd) for g in f[1]) + ")"
    num = _number(f[3], rnd.randrange(4))
    if kind == "x":
        var = f"X_{f[1]}"
        return f"({f[2]} {var} {num})" if rnd.random() < 0.5 else f"({FLIP[f[2]]} {num} {var})"
    terms = []
    for j, c in enumerate(f[1]):
        form = rnd.randrange(3)
        if c == 0:
            continue
        if c == 1:
            terms.append(f"Y_{j}")
        elif c == -1 and form == 0:
            terms.append(f"(- Y_{j})")
        elif form == 1:
            terms.append(f"(* Y_{j} {c})")
        else:
            terms.append(f"(* {c} Y_{j})")
    lhs = terms[0] if len(terms) == 1 and rnd.random() < 0.5 else "(+ " + " ".join(terms) + ")"
    style = rnd.randrange(5)
    if style == 0:
        return f"({f[2]} {lhs} {num})"
    if style == 1:
        return f"({FLIP[f[2]]} {num} {lhs})"
    if style == 2:
        return f"({f[2]} (- {lhs} {num}) 0)"
    if style == 3:  # scaled by 2 (exact): same inequality
        return f"({f[2]} (* 2 (- {lhs} {num})) 0.0)"
    return f"({FLIP[f[2]]} (* (- {lhs} {num}) -1) 0)"  # negated: flipped inequality


@st.composite
def _problems(draw: Any) -> tuple[str, list[Formula], int, int]:
    """A random property: VNN-LIB text, its asserted formulas, and its dimensions."""
    n_in, n_out = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    constant = st.sampled_from(GRID)
    x_atom = st.tuples(st.just("x"), st.integers(0, n_in - 1), st.sampled_from(OPS), constant)
    coeffs = st.lists(st.sampled_from([-2, -1, 0, 1, 2]), min_size=n_out, max_size=n_out)
    y_atom = st.tuples(st.just("y"), coeffs.filter(any).map(tuple), st.sampled_from(OPS), constant)
    formula = st.recursive(
        st.one_of(x_atom, y_atom),
        lambda kids: st.tuples(
            st.sampled_from(["and", "or"]), st.lists(kids, min_size=1, max_size=3)
        ),
        max_leaves=8,
    )
    base: list[Formula] = []
    for i in range(n_in):  # every input gets a box in every disjunct
        lo, hi = sorted(draw(st.tuples(constant, constant)))
        base += [("x", i, ">=", lo), ("x", i, "<=", hi)]
    asserts = base + draw(st.lists(formula, min_size=1, max_size=2))
    rnd = draw(st.randoms(use_true_random=False))
    order = list(range(len(asserts)))
    rnd.shuffle(order)
    decls = [f"(declare-const X_{i} Real)" for i in range(n_in)]
    decls += [f"(declare-const Y_{j} Real)" for j in range(n_out)]
    body = [f"(assert {_render(asserts[k], rnd)})" for k in order]
    return "\n".join(decls + body) + "\n", asserts, n_in, n_out


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=_problems(), seed=st.integers(0, 2**32 - 1))
def test_roundtrip_random_properties(
    problem: tuple[str, list[Formula], int, int], seed: int
) -> None:
    text, asserts, n_in, n_out = problem
    formula: Formula = ("and", asserts)
    rng = np.random.default_rng(seed)
    xs = rng.choice([k / 8 for k in range(-20, 21)], size=(500, n_in))
    ys = rng.choice([k / 8 for k in range(-40, 41)], size=(500, n_out))
    try:
        prop = parse_vnnlib(text, n_inputs=n_in, n_outputs=n_out)
    except VnnlibSemanticError as e:  # legitimately unsatisfiable input constraints
        assert "input set is empty" in str(e)
        assert not _evaluate(formula, xs, ys).any()
        return
    # points on the corners of the parsed boxes hit the boundaries exactly
    corners = np.array([t.box.lower for t in prop.terms] + [t.box.upper for t in prop.terms])
    xs = np.concatenate([xs, corners[rng.integers(0, len(corners), len(xs))]])
    ys = np.concatenate([ys, ys])
    expected = _evaluate(formula, xs, ys)
    got = _members(prop, xs, ys)
    bad = np.flatnonzero(got != expected)
    assert bad.size == 0, (text, xs[bad[0]], ys[bad[0]], expected[bad[0]])
    for k in range(5):  # the scalar API agrees with the vectorised check
        assert (prop.violated_by(xs[k], ys[k]) >= 0) == expected[k]


# ============================================================ 4. malformed files


D1 = "(declare-const X_0 Real)\n(declare-const Y_0 Real)\n"
OK = "(assert (>= X_0 0))\n(assert (<= X_0 1))\n"

MALFORMED: list[tuple[str, str, type[PropertyError], str]] = [
    ("extra-close", D1 + OK + "(assert (<= Y_0 1)))\n", VnnlibSyntaxError,
     r"t\.vnnlib:5:20: unbalanced parentheses: unexpected '\)'"),
    ("never-closed", D1 + OK + "(assert (<= Y_0 1)\n", VnnlibSyntaxError,
     r"t\.vnnlib:5:1: unbalanced parentheses: '\(' is never closed "
     r"\(unexpected end of file at 6:1\)"),
    ("eof-inside", D1 + "(assert (and (<= X_0 1)", VnnlibSyntaxError,
     r"t\.vnnlib:3:9: unbalanced parentheses"),
    ("undeclared", D1 + OK + "(assert (<= Y_0 X_9))\n", VnnlibSemanticError,
     r"t\.vnnlib:5:17: undeclared variable X_9"),
    ("used-before-declared", "(declare-const X_0 Real)\n" + OK + "  (assert (<= Y_0 1))\n"
     "(declare-const Y_0 Real)\n", VnnlibSemanticError, r"t\.vnnlib:4:15: undeclared variable Y_0"),
    ("bad-number", D1 + OK + "(assert (<= Y_0 1.2.3))\n", VnnlibSyntaxError,
     r"t\.vnnlib:5:17: bad number '1\.2\.3'"),
    ("bad-exponent", D1 + "(assert (>= X_0 1e))\n", VnnlibSyntaxError,
     r"t\.vnnlib:3:17: bad number '1e'"),
    ("number-overflow", D1 + "(assert (>= X_0 1e999))\n", VnnlibSyntaxError,
     r"t\.vnnlib:3:17: number '1e999' is out of range"),
    ("unknown-token", D1 + "(assert (>= |X_0| 1))\n", VnnlibSyntaxError,
     r"t\.vnnlib:3:13: unknown token '\|X_0\|'"),
    ("unknown-command", D1 + OK + "(declare-fun Y_1 () Real)\n", VnnlibSemanticError,
     r"t\.vnnlib:5:2: unknown command 'declare-fun'"),
    ("not-a-command", D1 + "assert\n", VnnlibSemanticError,
     r"t\.vnnlib:3:1: expected a command such as \(assert \.\.\.\), got 'assert'"),
    ("assert-two-args", D1 + OK + "(assert (<= Y_0 1) (<= Y_0 2))\n", VnnlibSemanticError,
     r"t\.vnnlib:5:1: assert takes one formula, got 2"),
    ("missing-upper", D1 + "(assert (>= X_0 0))\n(assert (<= Y_0 1))\n", VnnlibSemanticError,
     r"t\.vnnlib:1:16: input X_0 has no upper bound"),
    ("missing-lower-in-disjunct", D1 + "(assert (<= X_0 1))\n"
     "(assert (or (>= X_0 0) (<= Y_0 1)))\n", VnnlibSemanticError,
     r"t\.vnnlib:1:16: input X_0 has no lower bound in disjunct 2 of 2"),
    ("x-vs-y", D1 + OK + "(assert (<= X_0 Y_0))\n", VnnlibSemanticError,
     r"t\.vnnlib:5:9: atoms mixing inputs and outputs are not supported"),
    ("x-vs-y-expression", D1 + OK + "(assert (<= (+ X_0 Y_0) 1))\n", VnnlibSemanticError,
     r"t\.vnnlib:5:9: atoms mixing inputs and outputs"),
    ("x-vs-x", "(declare-const X_0 Real)\n(declare-const X_1 Real)\n(declare-const Y_0 Real)\n"
     "(assert (<= X_0 X_1))\n", VnnlibSemanticError,
     r"t\.vnnlib:4:9: input constraints must be bounds"),
    ("x-scaled", D1 + "(assert (<= (* 2 X_0) 1))\n", VnnlibSemanticError,
     r"t\.vnnlib:3:9: input constraints must be bounds"),
    ("nonlinear", D1 + OK + "(assert (<= (* Y_0 Y_0) 1))\n", VnnlibSemanticError,
     r"t\.vnnlib:5:13: nonlinear term"),
    ("unsupported-op", D1 + OK + "(assert (not (<= Y_0 1)))\n", VnnlibSemanticError,
     r"t\.vnnlib:5:10: unsupported operator 'not' in a formula"),
    ("unsupported-term", D1 + OK + "(assert (<= (/ Y_0 2) 1))\n", VnnlibSemanticError,
     r"t\.vnnlib:5:13: unsupported term '\(/ \.\.\.\)'"),
    ("empty-or", D1 + OK + "(assert (or))\n", VnnlibSemanticError,
     r"t\.vnnlib:5:9: or needs at least one argument"),
    ("duplicate", D1 + "(declare-const X_0 Real)\n", VnnlibSemanticError,
     r"t\.vnnlib:3:16: duplicate declaration of X_0 \(first declared at 1:16\)"),
    ("bad-sort", "(declare-const X_0 Int)\n", VnnlibSemanticError,
     r"t\.vnnlib:1:20: unsupported sort 'Int'; expected Real"),
    ("bad-name", "(declare-const Z_0 Real)\n", VnnlibSemanticError,
     r"t\.vnnlib:1:16: unsupported variable name 'Z_0'"),
    ("leading-zero", "(declare-const X_01 Real)\n", VnnlibSemanticError,
     r"t\.vnnlib:1:16: unsupported variable name 'X_01'"),
    ("gap-inputs", D1 + "(declare-const X_2 Real)\n" + OK, VnnlibSemanticError,
     r"t\.vnnlib:3:16: input variables must be numbered contiguously from X_0: "
     r"X_2 is declared but X_1 is not"),
    ("gap-outputs", "(declare-const X_0 Real)\n(declare-const Y_1 Real)\n" + OK,
     VnnlibSemanticError, r"t\.vnnlib:2:16: output variables must be numbered contiguously "
     r"from Y_0: Y_1 is declared but Y_0 is not"),
    ("empty", "", VnnlibSemanticError, r"t\.vnnlib:1:1: no input variables declared"),
    ("only-comments", "; nothing\n\n", VnnlibSemanticError,
     r"t\.vnnlib:3:1: no input variables declared"),
    ("no-outputs", "(declare-const X_0 Real)\n" + OK, VnnlibSemanticError,
     r"t\.vnnlib:4:1: no output variables declared"),
    ("overflowing-arithmetic", D1 + OK + "(assert (<= (* 1e300 1e300 Y_0) 1))\n",
     VnnlibSemanticError, r"t\.vnnlib:5:9: constraint has a coefficient or constant that "
     r"overflows"),
    ("too-deep", D1 + "(assert " + "(and " * 250 + ")" * 251, VnnlibSyntaxError,
     r"t\.vnnlib:3:\d+: expressions nested deeper than 200 levels"),
]


@pytest.mark.parametrize(
    "text,cls,pattern", [pytest.param(t, c, p, id=i) for i, t, c, p in MALFORMED]
)
def test_malformed(text: str, cls: type[PropertyError], pattern: str) -> None:
    with pytest.raises(cls, match="^" + pattern) as info:
        parse_vnnlib(text, source="t.vnnlib")
    message = str(info.value)
    assert "\n" not in message and "\r" not in message
    assert isinstance(info.value, PropertyError) and info.value.exit_code == 4


@pytest.mark.parametrize(
    "kw,pattern",
    [
        ({"n_inputs": 784}, r"t\.vnnlib:1:16: property declares 1 inputs but the model has 784"),
        ({"n_outputs": 10}, r"t\.vnnlib:2:16: property declares 1 outputs but the model has 10"),
    ],
)
def test_dimension_mismatch(kw: dict[str, int], pattern: str) -> None:
    with pytest.raises(VnnlibSemanticError, match="^" + pattern):
        parse_vnnlib(D1 + OK, source="t.vnnlib", **kw)


def test_error_classes_are_distinct_property_errors() -> None:
    assert issubclass(VnnlibSyntaxError, PropertyError)
    assert issubclass(VnnlibSemanticError, PropertyError)
    assert not issubclass(VnnlibSyntaxError, VnnlibSemanticError)
    assert not issubclass(VnnlibSemanticError, VnnlibSyntaxError)
    try:
        parse_vnnlib(D1 + "(assert (<= X_0 ))", source="s")
    except VnnlibSemanticError as e:
        assert (e.source, e.pos.line, e.pos.col) == ("s", 3, 9)
        assert e.detail == "<= needs at least two arguments"
