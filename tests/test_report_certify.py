"""Certify reports: JSON (+ schema), CSV, text table, plot, atomic writes."""

from __future__ import annotations

import csv
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import verinet.report.certify as rc
from verinet.certify.result import (
    CertifyReport,
    LipschitzBound,
    SampleReport,
    SampleStatus,
    Witness,
)
from verinet.types import Guarantee, InputError, Reason, Sandwich

INF = math.inf
D = 4  # input size of the hand-made samples


def _witness(distance: float, predicted: int) -> Witness:
    return Witness(np.full(D, 0.5) + distance, predicted, distance, "pgd")


def _samples(eps: float = 0.03) -> tuple[SampleReport, ...]:
    v, f, u, m, n = (SampleStatus.VERIFIED, SampleStatus.FALSIFIED, SampleStatus.UNKNOWN,
                     SampleStatus.MISCLASSIFIED, SampleStatus.VERIFIED)
    return (
        SampleReport(0, 3, 3, v, Reason.PROVEN_BY_MILP, eps,
                     Sandwich(0.05, 0.0505, "milp", "pgd", Guarantee.EXACT), True,
                     _witness(0.0505, 5), 1.5, (("attack", 0.5), ("milp", 1.0))),
        SampleReport(1, 2, 2, f, Reason.WITNESS_CONFIRMED, eps, Sandwich(0.01, 0.02, "crown",
                     "pgd"), False, _witness(0.02, 7), 0.25, (("attack", 0.25),)),
        SampleReport(2, 0, 0, u, Reason.TIMEOUT, eps, Sandwich(0.02, INF, "crown", ""),
                     message="milp timed out"),
        SampleReport(3, 1, 7, m, Reason.NONE, eps, Sandwich(0.0, 0.0, "clean", "clean"), True),
        SampleReport(4, 9, 9, n, Reason.PROVEN_BY_BOUNDS, eps, Sandwich(0.04, INF, "lipschitz"),
                     lipschitz=LipschitzBound(0.04, 0.01, 0.05)),
        SampleReport(5, 4, 4, u, Reason.UNSUPPORTED, eps),
    )


def _report(samples: tuple[SampleReport, ...] | None = None, eps: float | None = 0.03,
            ) -> CertifyReport:
    s = _samples() if samples is None else samples
    return CertifyReport("digits_mlp.onnx", "digits_test.npz", s, eps, 1e-3, 7,
                         (("timeout", 10.0), ("scale", None), ("shape", (1, 8)),
                          ("limit", INF), ("count", np.int64(3))), 4.5)


def _radius_only() -> CertifyReport:
    na = SampleStatus.NOT_ASKED
    s = (SampleReport(0, 1, 1, na, radius=Sandwich(0.1, 0.2, "crown", "fmn")),
         SampleReport(1, 2, 2, na, radius=Sandwich(0.3, 0.3, "milp", "milp"), exact=True),
         SampleReport(2, 2, 0, SampleStatus.MISCLASSIFIED, radius=Sandwich(0.0, 0.0)))
    return _report(s, eps=None)


REPORTS = {"mixed": _report, "radius-only": _radius_only, "empty": lambda: _report(())}


# ----------------------------------------------------------------------------- validator


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        ref = schema["$ref"]
        assert ref.startswith("#/$defs/"), ref
        schema = root["$defs"][ref.removeprefix("#/$defs/")]
    return schema


def _type_ok(v: object, t: str) -> bool:
    checks = {"object": lambda: isinstance(v, dict), "array": lambda: isinstance(v, list),
              "string": lambda: isinstance(v, str), "boolean": lambda: isinstance(v, bool),
              "null": lambda: v is None,
              "integer": lambda: isinstance(v, int) and not isinstance(v, bool),
              "number": lambda: isinstance(v, (int, float)) and not isinstance(v, bool)}
    return checks[t]()


def validate(v: object, schema: dict[str, Any], root: dict[str, Any], where: str = "$") -> None:
    """A small draft 2020-12 subset: $ref, type, enum, minimum, required, properties,
    additionalProperties, items.  Raises AssertionError naming the path."""
    schema = _resolve(schema, root)
    if "enum" in schema:
        assert v in schema["enum"], f"{where}: {v!r} not in {schema['enum']}"
    types = schema.get("type")
    if types is not None:
        types = [types] if isinstance(types, str) else types
        assert any(_type_ok(v, t) for t in types), f"{where}: {v!r} is not {types}"
    if "minimum" in schema and _type_ok(v, "number"):
        assert v >= schema["minimum"], f"{where}: {v} < {schema['minimum']}"  # type: ignore[operator]  # number checked above
    if isinstance(v, dict):
        for key in schema.get("required", []):
            assert key in v, f"{where}: missing required key {key!r}"
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, val in v.items():
            if key in props:
                validate(val, props[key], root, f"{where}.{key}")
            elif extra is False:
                raise AssertionError(f"{where}: unexpected key {key!r}")
            elif isinstance(extra, dict):
                validate(val, extra, root, f"{where}.{key}")
    if isinstance(v, list) and "items" in schema:
        for i, item in enumerate(v):
            validate(item, schema["items"], root, f"{where}[{i}]")


def _check_schema(d: dict[str, Any]) -> None:
    schema = rc.load_schema()
    validate(d, schema, schema)
    try:
        import jsonschema
    except ImportError:
        return
    jsonschema.Draft202012Validator(schema).validate(d)


# ----------------------------------------------------------------------------- JSON


@pytest.mark.parametrize("name", sorted(REPORTS))
def test_json_round_trip_and_schema(tmp_path: Path, name: str) -> None:
    report = REPORTS[name]()
    p = tmp_path / "report.json"
    rc.write_json(report, p)
    text = p.read_text()
    assert "Infinity" not in text and "NaN" not in text
    d = json.loads(text)
    assert d == rc.report_to_dict(report)
    _check_schema(d)
    assert rc.report_to_dict(rc.read_json(p)) == d


def test_json_content() -> None:
    d = rc.report_to_dict(_report())
    assert d["eps"] == 0.03 and d["seed"] == 7 and d["model"] == "digits_mlp.onnx"
    assert d["settings"] == {"timeout": 10.0, "scale": None, "shape": [1, 8], "limit": None,
                             "count": 3}
    s = d["summary"]
    assert (s["n"], s["correct"], s["verified"], s["falsified"], s["unknown"]) == (6, 5, 2, 1, 2)
    assert s["exact_radii"] == 2 and s["certified_accuracy"] == pytest.approx(2 / 6)
    assert s["empirical_accuracy"] == pytest.approx(4 / 6)
    by_index = {x["index"]: x for x in d["samples"]}
    assert by_index[2]["radius"]["upper"] is None  # inf: no adversarial example found
    assert by_index[0]["radius"] == {"lower": 0.05, "upper": 0.0505, "lower_by": "milp",
                                     "upper_by": "pgd", "lower_guarantee": "exact",
                                     "upper_guarantee": "empirical", "exact": True}
    assert by_index[1]["witness"]["x"] == [0.52] * D and by_index[1]["witness"]["predicted"] == 7
    assert by_index[5]["radius"] is None and by_index[5]["witness"] is None
    assert by_index[5]["reason"] == Reason.UNSUPPORTED.value
    assert by_index[0]["timings"] == {"attack": 0.5, "milp": 1.0}
    assert by_index[2]["message"] == "milp timed out"


def test_radius_only_summary_is_null() -> None:
    s = rc.report_to_dict(_radius_only())["summary"]
    assert s["verified"] is None and s["certified_accuracy"] is None
    assert rc.report_to_dict(_report(()))["summary"]["clean_accuracy"] is None


def test_schema_enums_match_the_code() -> None:
    defs = rc.load_schema()["$defs"]
    sample = defs["sample"]["properties"]
    assert sample["status"]["enum"] == [s.value for s in SampleStatus]
    assert sample["reason"]["enum"] == [r.value for r in Reason]
    assert defs["guarantee"]["enum"] == [g.value for g in Guarantee]


def test_validator_rejects_broken_reports() -> None:
    schema = rc.load_schema()
    d = rc.report_to_dict(_report())
    broken = [("summary", None, "$.summary: None is not ['object']"),
              ("eps", "0.03", "$.eps: '0.03' is not ['number', 'null']"),
              ("samples", {}, "$.samples: {} is not ['array']")]
    for key, val, message in broken:
        with pytest.raises(AssertionError, match=re.escape(message)):
            validate({**d, key: val}, schema, schema)
    sample = {**d["samples"][0], "status": "robust"}
    with pytest.raises(AssertionError, match="robust"):
        validate({**d, "samples": [sample]}, schema, schema)
    del sample["radius"]
    with pytest.raises(AssertionError, match="missing required key 'radius'"):
        validate(sample, schema["$defs"]["sample"], schema)


def test_read_json_errors(tmp_path: Path) -> None:
    p = tmp_path / "r.json"
    p.write_text("{not json")
    with pytest.raises(InputError, match="cannot read report"):
        rc.read_json(p)
    p.write_text('{"model": "m"}')
    with pytest.raises(InputError, match="not a verinet certify report"):
        rc.read_json(p)


# ----------------------------------------------------------------------------- curves


@pytest.mark.parametrize("name", sorted(REPORTS))
def test_curves_monotone(name: str) -> None:
    c = rc.report_to_dict(REPORTS[name]())["curves"]
    eps, cert, emp = (np.array(c[k]) for k in ("eps", "certified", "empirical"))
    assert eps[0] == 0 and np.all(np.diff(eps) > 0) and eps[-1] <= 1
    assert len(cert) == len(emp) == len(eps)
    assert np.all(np.diff(cert) <= 0) and np.all(np.diff(emp) <= 0)
    assert np.all(cert <= emp)


def test_curve_values_and_grid() -> None:
    report = _report()
    grid = rc.curve_grid(report)
    assert grid.tolist() == [0.0, 0.01, 0.02, 0.03, 0.04, 0.05, 0.0505]
    cert, emp = report.curves(grid)
    # at 0: the 5 correct samples; at eps 0.03: the 2 verified ones
    assert cert[0] == emp[0] == pytest.approx(5 / 6)
    assert cert[3] == pytest.approx(2 / 6)
    assert emp[-1] == pytest.approx(3 / 6)  # 2 and 4: upper = inf; 5: no radius, not attacked


def test_curve_grid_is_thinned() -> None:
    rng = np.random.default_rng(0)
    lows = rng.uniform(0, 0.5, 600)
    s = tuple(SampleReport(i, 0, 0, SampleStatus.UNKNOWN, Reason.TIMEOUT, 0.123,
                           Sandwich(lo, lo + 0.1)) for i, lo in enumerate(lows))
    grid = rc.curve_grid(_report(s, eps=0.123), max_points=50)
    assert len(grid) <= 51 and grid[0] == 0 and 0.123 in grid
    assert grid[-1] == pytest.approx(lows.max() + 0.1)


# ----------------------------------------------------------------------------- CSV, table


def test_csv_rows(tmp_path: Path) -> None:
    p = tmp_path / "r.csv"
    rc.write_csv(_report(), p)
    with p.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == rc.CSV_COLUMNS and len(rows) == 6
    assert rows[0]["status"] == "verified" and rows[0]["exact"] == "true"
    assert float(rows[0]["lower"]) == 0.05 and rows[0]["lower_by"] == "milp"
    assert rows[2]["upper"] == "inf" and float(rows[2]["upper"]) == INF
    assert rows[3]["status"] == "misclassified" and rows[3]["predicted"] == "7"
    assert rows[5]["lower"] == rows[5]["upper"] == "" and rows[5]["reason"] == "unsupported " \
        "model for complete verification"
    assert rows[1]["eps"] == "0.03" and float(rows[1]["seconds"]) == 0.25


def test_table_text() -> None:
    text = rc.format_table(_report())
    lines = text.splitlines()
    assert lines[0].split() == ["index", "label", "pred", "status", "lower", "upper",
                                "lipschitz", "exact", "by", "seconds", "note"]
    assert "Lipschitz radius   (L-inf, sound) median 0.04 over 1 samples; the lower end on 1" \
        in text
    assert len([ln for ln in lines if ln.startswith("    ")]) >= 5  # right-aligned indices
    assert "timeout; milp timed out" in text and "milp/pgd" in text and "crown/-" in text
    assert "clean accuracy     5/6 = 83.3%" in text
    assert "at eps = 0.03" in text
    assert "certified robust 2/6 = 33.3%" in text
    assert "empirical robust 4/6 = 66.7%" in text and "1 falsified" in text
    assert "exact radii        2/6 = 33.3%" in text
    assert "inf" in text


def test_table_without_eps_and_empty() -> None:
    assert "no eps given" in rc.format_table(_radius_only())
    text = rc.format_table(_report(()))
    assert "clean accuracy     0/0" in text


# ----------------------------------------------------------------------------- atomic writes


def test_failed_serialisation_keeps_previous_file(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "report.json"
    samples = _samples()
    for k in range(1, 4):  # rewritten after every sample, as the CLI does
        rc.write_json(_report(samples[:k]), p)
    before = p.read_bytes()

    def boom(report: CertifyReport) -> dict[str, Any]:
        raise RuntimeError("serialisation failed")

    monkeypatch.setattr(rc, "report_to_dict", boom)
    with pytest.raises(RuntimeError, match="serialisation failed"):
        rc.write_json(_report(samples), p)
    assert p.read_bytes() == before
    assert len(json.loads(before)["samples"]) == 3
    assert sorted(x.name for x in tmp_path.iterdir()) == ["report.json"]


def test_failed_rename_keeps_previous_file(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "report.csv"
    rc.write_csv(_report(_samples()[:1]), p)
    before = p.read_bytes()

    def fail(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(rc.os, "replace", fail)
    with pytest.raises(InputError, match="cannot write .*report.csv: No space left"):
        rc.write_csv(_report(), p)
    assert p.read_bytes() == before
    assert sorted(x.name for x in tmp_path.iterdir()) == ["report.csv"]


def test_write_into_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot write"):
        rc.write_json(_report(), tmp_path / "missing" / "r.json")


# ----------------------------------------------------------------------------- plot


@pytest.mark.parametrize("name", sorted(REPORTS))
def test_plot_writes_png(tmp_path: Path, name: str) -> None:
    pytest.importorskip("matplotlib")
    from verinet.report.plots import plot_report

    p = tmp_path / "plot.png"
    plot_report(REPORTS[name](), p)
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from verinet.report.plots import plot_report

    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(InputError, match="matplotlib is needed for --plot: pip install"):
        plot_report(_report(), tmp_path / "plot.png")


def test_plot_bad_format(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from verinet.report.plots import plot_report

    with pytest.raises(InputError, match="cannot write plot"):
        plot_report(_report(), tmp_path / "plot.nosuchformat")
