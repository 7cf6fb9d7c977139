"""The record file: streamed lines, resume after a crash at any point, header checks,
shards and merge."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verinet import api, examples
from verinet.certify.engine import CertifyOptions
from verinet.report.records import (
    RecordHeader,
    Shard,
    merge_records,
    open_records,
    read_records,
    record_line,
    report_from_records,
)
from verinet.runs.dataset import run_dataset, run_header
from verinet.runs.sample import SampleJob
from verinet.types import InputError

JOB = SampleJob("certify", certify=CertifyOptions(eps=0.03, timeout=5.0, attacks=("fmn",),
                                                  milp=False))
N = 4


@pytest.fixture(scope="module")
def digits():
    model = api.load_model(examples.model_path())
    data = np.load(examples.data_path())
    return model, data["x"][:N].reshape(N, -1).astype(np.float64), data["y"][:N]


def _header(model, x, shard=None) -> RecordHeader:
    return run_header(JOB, model_path=str(examples.model_path()), mean=None, std=None,
                      data_path=str(examples.data_path()), selection={"samples": N},
                      indices=np.arange(len(x)), n_inputs=model.n_inputs, shard=shard)


def _run(path: Path, digits, *, resume: bool = False, shard: Shard | None = None):
    model, x, y = digits
    writer, resumed = open_records(path, _header(model, x, shard), resume=resume)
    with writer:
        return run_dataset(JOB, model.network, model.onnx_eval, x, y, records=writer,
                           resumed=resumed, shard=shard)


def _strip(d: dict) -> dict:
    return {k: v for k, v in d.items() if k not in ("seconds", "timings")}


def _samples(path: Path) -> list[dict]:
    return [_strip(s) for s in read_records(path).samples]


@pytest.fixture(scope="module")
def full(tmp_path_factory, digits) -> Path:
    path = tmp_path_factory.mktemp("records") / "full.jsonl"
    report = _run(path, digits)
    assert [r.index for r in report.samples] == list(range(N))
    return path


def test_one_line_per_sample_after_the_header(full: Path) -> None:
    lines = full.read_bytes().split(b"\n")
    assert lines[-1] == b""  # every line ends with a newline
    head = json.loads(lines[0])
    assert head["verinet_records"] == 1 and head["shard"] is None
    assert [json.loads(ln)["index"] for ln in lines[1:-1]] == list(range(N))


def _cuts(data: bytes) -> list[int]:
    """Every line boundary, and three torn points inside every line."""
    starts = [0] + [i + 1 for i, b in enumerate(data) if b == ord("\n")]
    cuts = set(starts)
    for a, b in zip(starts, starts[1:], strict=False):
        cuts |= {a + 1, (a + b) // 2, b - 1}
    return sorted(c for c in cuts if c <= len(data))


def test_resume_after_a_crash_at_every_point_gives_the_full_record_set(
        tmp_path: Path, full: Path, digits) -> None:
    data = full.read_bytes()
    want = sorted(_samples(full), key=lambda s: s["index"])
    for cut in _cuts(data):
        path = tmp_path / f"cut{cut}.jsonl"
        path.write_bytes(data[:cut])
        report = _run(path, digits, resume=True)
        got = _samples(path)
        assert sorted(got, key=lambda s: s["index"]) == want, cut
        assert len({s["index"] for s in got}) == len(got) == N  # nothing twice
        assert [r.index for r in report.samples] == list(range(N))
        assert path.read_bytes().endswith(b"\n")


def test_a_header_of_another_run_is_refused_and_the_file_left_untouched(
        tmp_path: Path, full: Path, digits) -> None:
    model, x, _ = digits
    path = tmp_path / "r.jsonl"
    path.write_bytes(full.read_bytes()[:-7])  # with a torn last line, which stays
    before = path.read_bytes()
    other = run_header(SampleJob("certify", certify=CertifyOptions(eps=0.05)),
                       model_path=str(examples.model_path()), mean=None, std=None,
                       data_path=str(examples.data_path()), selection={"samples": N},
                       indices=np.arange(N), n_inputs=model.n_inputs, shard=None)
    with pytest.raises(InputError, match=r"records are of another run \(eps, settings "
                                         r"differ\); nothing was changed"):
        open_records(path, other, resume=True)
    assert path.read_bytes() == before


def test_an_existing_record_file_is_never_overwritten(tmp_path: Path, full: Path,
                                                      digits) -> None:
    model, x, _ = digits
    path = tmp_path / "r.jsonl"
    path.write_bytes(full.read_bytes())
    with pytest.raises(InputError, match="exists \\(add --resume to continue it"):
        open_records(path, _header(model, x), resume=False)
    assert path.read_bytes() == full.read_bytes()


def test_a_corrupt_middle_line_or_a_duplicate_is_refused(tmp_path: Path, full: Path) -> None:
    lines = full.read_bytes().split(b"\n")
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"\n".join(lines[:2] + [b"{junk"] + lines[2:]))
    with pytest.raises(InputError, match="line 3 is not a sample record"):
        read_records(bad)
    dup = tmp_path / "dup.jsonl"
    dup.write_bytes(b"\n".join(lines[:3] + [lines[2]] + lines[3:]))
    with pytest.raises(InputError, match="sample 1 appears twice \\(line 4\\)"):
        read_records(dup)
    edited = tmp_path / "edited.jsonl"
    head = json.loads(lines[0])
    head["identity"]["eps"] = 0.5
    edited.write_bytes(b"\n".join([json.dumps(head).encode()] + lines[1:]))
    with pytest.raises(InputError, match="key does not match its identity"):
        read_records(edited)


def test_the_report_is_derived_from_the_records(full: Path) -> None:
    rs = read_records(full)
    report = report_from_records(rs, str(full))
    assert [r.index for r in report.samples] == list(range(N))
    assert report.eps == 0.03 and report.summary().n == N


def test_shards_merge_into_the_unsharded_run(tmp_path: Path, full: Path, digits) -> None:
    parts = []
    for i in range(3):
        p = tmp_path / f"s{i}.jsonl"
        report = _run(p, digits, shard=Shard.parse(f"{i}/3"))
        assert [r.index for r in report.samples] == list(range(i, N, 3))
        parts.append(p)
    merged = tmp_path / "m.jsonl"
    rs = merge_records(reversed(parts), merged)
    assert rs.header.shard is None
    assert _samples(merged) == _samples(full)
    assert read_records(merged).header.key == read_records(full).header.key
    partial = tmp_path / "p.jsonl"
    assert merge_records(parts[:2], partial).header.shard == Shard(3, (0, 1))
    with pytest.raises(InputError, match=r"part\(s\) 1 given twice"):
        merge_records([parts[1], partial], tmp_path / "x.jsonl")
    two = tmp_path / "two.jsonl"
    _run(two, digits, shard=Shard.parse("0/2"))
    with pytest.raises(InputError, match="is shard 0/2, the others are of 3 parts"):
        merge_records([parts[1], two], tmp_path / "y.jsonl")
    with pytest.raises(InputError, match="holds the whole run, not a shard"):
        merge_records([parts[0], full], tmp_path / "z.jsonl")
    assert not (tmp_path / "x.jsonl").exists() and not (tmp_path / "y.jsonl").exists()


def test_shard_options_are_checked() -> None:
    for bad, msg in (("3/3", "needs 0 <= I < N"), ("1", "must be I/N"), ("a/b", "must be I/N"),
                     ("0/0", "needs 0 <= I < N")):
        with pytest.raises(InputError, match=msg):
            Shard.parse(bad)
    assert Shard.parse("1/3").select(7) == [1, 4]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=0, max_size=40),
       st.floats(allow_nan=False, allow_infinity=False))
def test_a_record_line_reads_back_the_very_same_floats(xs, d):
    """The record writer (orjson) and json agree on every finite float, bit for bit,
    short lists and long ones (checked in one numpy pass) alike."""
    rec = {"index": 3, "witness": {"distance": d, "x": xs}, "message": "", "radius": None}
    line = record_line(rec)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    back = json.loads(line)
    assert back == json.loads(json.dumps(rec))
    assert [np.float64(v).tobytes() for v in back["witness"]["x"]] == [
        np.float64(v).tobytes() for v in xs]  # -0.0 and subnormals included


@pytest.mark.parametrize("where", ["scalar", "short", "long", "nested"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_a_record_with_a_non_finite_number_is_refused(where, bad):
    """As json's allow_nan=False did: a NaN or infinity in a record is a bug upstream
    (the report maps legitimate infinities to None), never written as null."""
    xs = [0.5] * (40 if where == "long" else 3)
    rec: dict = {"index": 7, "seconds": 1.0, "witness": {"x": xs}, "timings": {"a": 0.1}}
    if where == "scalar":
        rec["seconds"] = bad
    elif where == "nested":
        rec["timings"]["a"] = bad
    else:
        xs[-1] = bad
    with pytest.raises(ValueError, match="record of sample 7: a non-finite number"):
        record_line(rec)
