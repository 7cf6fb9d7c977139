"""Streamed per-sample records (``--records PATH``): JSON Lines, one line per finished
sample, each line flushed and fsynced as it is appended.

Layout::

    {"verinet_records": 1, "key": SHA256, "shard": null | {"count": N, "parts": [I, ...]},
     "identity": {...}, "report": {model, data, eps, tolerance, seed, settings},
     "verinet": version}
    {sample object}            # exactly a JSON report's ``samples`` entry
    {sample object}
    ...

``identity`` holds everything that changes results -- the command, verinet's version,
the model's and the data file's SHA-256, the normalisation, the sample selection and
every engine option -- and ``key`` is the SHA-256 of its canonical JSON.  The shard is
kept beside the key, so shards of one run share their key.  Worker counts, threads,
progress and output paths are not part of it: they do not change a record.

Crash safety: the header is written and fsynced before any sample runs; each sample line
is written with one ``write`` of the whole line as the sample finishes, so a killed
process loses no finished sample, and fsynced right after by a background thread (group
commit, :class:`RecordWriter`), so a machine that goes down loses at most the lines of
the last fsync in flight. After any crash the file is a valid header, complete sample
lines, and at most one torn last line (no newline yet). :func:`open_records` with
``resume`` cuts the torn tail (that sample is run again), refuses a header that does not
match the current run (one-line error, file untouched), and returns the finished
samples, which the run then skips. A file holding no complete header line (a crash while
creating it) holds no sample either and is started afresh.

:func:`merge_records` combines the record files of the shards of one run (same key,
same shard count, disjoint parts) into one file; :func:`report_from_records` rebuilds
the certify report (JSON, CSV, table, plot) from any record file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from verinet import __version__
from verinet.certify.result import CertifyReport, SampleReport
from verinet.report.certify import _jsonable, _sample_dict, _sample_from_dict
from verinet.report.shard import Shard
from verinet.types import InputError, SoundnessError

log = logging.getLogger(__name__)

FORMAT = 1


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _finite(v: object) -> bool:
    """Every number in ``v`` (a record's JSON-ready dict) finite.  Long lists of numbers
    (a witness) are checked in one numpy pass."""
    if isinstance(v, float):
        return math.isfinite(v)
    if isinstance(v, dict):
        return all(_finite(u) for u in v.values())
    if isinstance(v, (list, tuple)):
        if len(v) > 16 and None not in v:
            try:
                return bool(np.isfinite(np.asarray(v, dtype=np.float64)).all())
            except (TypeError, ValueError):
                pass  # not all numbers: one by one
        return all(_finite(u) for u in v)
    return True


def record_line(d: Mapping[str, Any]) -> bytes:
    """One record as a line of compact JSON.  orjson writes it (about 15x faster than
    ``json`` on a sample with an MNIST-size witness: floats in the same shortest
    round-trip form, so ``json.loads`` reads back the very same numbers); as with
    ``json``'s ``allow_nan=False``, a NaN or infinity is refused (orjson would write
    ``null``), since the report layer maps every legitimately infinite value to None."""
    if not _finite(d):
        raise ValueError(f"record of sample {d.get('index')}: a non-finite number")
    return orjson.dumps(d, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY)


def _canonical(d: Any) -> str:
    return json.dumps(_jsonable(d), sort_keys=True, separators=(",", ":"), allow_nan=False)


@dataclass(frozen=True)
class RecordHeader:
    """The first line: what the records are results of (see the module doc)."""

    identity: Mapping[str, Any]
    report: Mapping[str, Any]
    shard: Shard | None = None

    @property
    def key(self) -> str:
        return hashlib.sha256(_canonical(self.identity).encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {"verinet_records": FORMAT, "key": self.key,
                "shard": None if self.shard is None else self.shard.to_json(),
                "identity": _jsonable(dict(self.identity)),
                "report": _jsonable(dict(self.report)), "verinet": __version__}

    def line(self) -> bytes:
        return (json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False)
                + "\n").encode()

    @staticmethod
    def from_dict(d: Mapping[str, Any], where: str) -> RecordHeader:
        if not isinstance(d, Mapping) or d.get("verinet_records") != FORMAT:
            raise InputError(f"{where}: not a verinet record file (no header line)")
        try:
            h = RecordHeader(d["identity"], d["report"], Shard.from_json(d["shard"]))
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"{where}: bad record header ({type(e).__name__}: {e})") from None
        if h.key != d.get("key"):
            raise InputError(f"{where}: the record header's key does not match its identity "
                             "(edited by hand?)")
        return h

    def differences(self, other: RecordHeader) -> list[str]:
        """The identity entries (and shard) that differ, for the refusal message."""
        a, b = _jsonable(dict(self.identity)), _jsonable(dict(other.identity))
        assert isinstance(a, dict) and isinstance(b, dict)
        out = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        if self.shard != other.shard:
            out.append("shard")
        return out


# ----------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class RecordSet:
    """A record file's header and its complete sample lines (as plain dicts, in file
    order); ``torn`` is the byte offset of a torn last line (None: the file ends with a
    newline)."""

    header: RecordHeader
    samples: tuple[dict[str, Any], ...]
    torn: int | None = None

    @property
    def indices(self) -> set[int]:
        return {int(s["index"]) for s in self.samples}


def _parse(path: Path, data: bytes) -> RecordSet | None:
    """The record set of ``data`` (None: no complete header line)."""
    end = data.rfind(b"\n") + 1  # complete lines end here
    torn = end if end < len(data) else None
    lines = data[:end].split(b"\n")[:-1]
    if not lines:
        return None
    try:
        header = RecordHeader.from_dict(json.loads(lines[0]), str(path))
    except ValueError:
        raise InputError(f"{path}: not a verinet record file (line 1 is not JSON)") from None
    samples: list[dict[str, Any]] = []
    seen: set[int] = set()
    for n, raw in enumerate(lines[1:], start=2):
        try:
            d = json.loads(raw)
            index = int(d["index"])
        except (ValueError, KeyError, TypeError):
            raise InputError(f"{path}: line {n} is not a sample record (corrupt file)") from None
        if index in seen:
            raise InputError(f"{path}: sample {index} appears twice (line {n})")
        seen.add(index)
        samples.append(d)
    return RecordSet(header, tuple(samples), torn)


def read_records(path: str | os.PathLike[str]) -> RecordSet:
    """Read a record file; a torn last line (a crash while it was written) is ignored
    with a warning."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read records {p}: {e.strerror or e}") from None
    rs = _parse(p, data)
    if rs is None:
        raise InputError(f"{p}: not a verinet record file (no header line)")
    if rs.torn is not None:
        log.warning("%s: ignoring a torn last line (the run was cut while writing it)", p)
    return rs


# ----------------------------------------------------------------------------- writing


class RecordWriter:
    """Appends sample lines (module doc).  Each line goes to the file with one ``write``
    as the sample finishes -- from then on it survives the process being killed -- and
    is fsynced by a background thread right after (group commit: one fsync covers every
    line written before it, so a burst of lines does not wait for one disk flush each).
    :meth:`sync` waits until every line so far is on disk; :meth:`close` syncs first.
    A failed write or fsync is raised by the next call."""

    def __init__(self, path: Path, fd: int, done: Iterable[int]) -> None:
        self.path = path
        self._fd = fd
        self._done = set(done)
        self._written = self._synced = 0
        self._error: OSError | None = None
        self._stop = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._syncer, name="verinet-records-fsync",
                                        daemon=True)
        self._thread.start()

    def _syncer(self) -> None:
        while True:
            with self._cond:
                while self._synced == self._written and not self._stop:
                    self._cond.wait()
                if self._synced == self._written:
                    return
                target = self._written
            try:
                os.fsync(self._fd)
            except OSError as e:
                with self._cond:
                    self._error = e
                    self._synced = target
                    self._cond.notify_all()
                return
            with self._cond:
                self._synced = target
                self._cond.notify_all()

    def _raise(self) -> None:
        if self._error is not None:
            e = self._error
            raise InputError(f"cannot write records {self.path}: {e.strerror or e}")

    def append(self, report: SampleReport) -> None:
        self.append_dict(_sample_dict(report))

    def append_dict(self, d: Mapping[str, Any]) -> None:
        index = int(d["index"])
        if index in self._done:
            raise SoundnessError(f"{self.path}: sample {index} recorded twice")
        self._raise()
        line = record_line(d)
        _write_all(self._fd, line, self.path, sync=False)
        self._done.add(index)
        with self._cond:
            self._written += 1
            self._cond.notify_all()

    def sync(self) -> None:
        """Wait until every line appended so far is fsynced."""
        with self._cond:
            while self._synced < self._written and self._error is None:
                self._cond.wait()
        self._raise()

    def close(self) -> None:
        if self._fd < 0:
            return
        try:
            self.sync()
        finally:
            with self._cond:
                self._stop = True
                self._cond.notify_all()
            self._thread.join()
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _write_all(fd: int, data: bytes, path: Path, *, sync: bool = True) -> None:
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if sync:
            os.fsync(fd)
    except OSError as e:
        raise InputError(f"cannot write records {path}: {e.strerror or e}") from None


def open_records(path: str | os.PathLike[str], header: RecordHeader, *, resume: bool
                 ) -> tuple[RecordWriter, RecordSet | None]:
    """The writer of a run's record file and, with ``resume``, the samples it already
    holds.  Without ``resume`` an existing non-empty file is refused (nothing is ever
    overwritten); with it, a missing or empty file starts afresh, a header mismatch is
    refused with the file untouched, and a torn last line is cut off."""
    p = Path(path)
    data = b""
    if p.is_dir():
        raise InputError(f"--records {p}: is a directory")
    if p.exists():
        try:
            data = p.read_bytes()
        except OSError as e:
            raise InputError(f"cannot read records {p}: {e.strerror or e}") from None
    existing = _parse(p, data) if data else None
    if data and not resume:
        raise InputError(f"--records {p} exists (add --resume to continue it, or remove it)")
    try:
        if existing is None:  # nothing recorded: (re)create with the header
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
            _write_all(fd, header.line(), p)
            return RecordWriter(p, fd, ()), None
        diff = existing.header.differences(header)
        if diff:
            verb = "differs" if len(diff) == 1 else "differ"
            raise InputError(f"--resume {p}: the records are of another run ({', '.join(diff)} "
                             f"{verb}); nothing was changed")
        fd = os.open(p, os.O_WRONLY | os.O_APPEND)
        if existing.torn is not None:
            log.warning("%s: cutting a torn last line (its sample runs again)", p)
            os.ftruncate(fd, existing.torn)
            os.fsync(fd)
    except OSError as e:
        raise InputError(f"cannot open records {p}: {e.strerror or e}") from None
    return RecordWriter(p, fd, existing.indices), existing


# ----------------------------------------------------------------------------- derived


def sample_reports(samples: Iterable[Mapping[str, Any]], where: str) -> list[SampleReport]:
    try:
        return [_sample_from_dict(dict(s)) for s in samples]
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise InputError(f"{where}: bad sample record ({type(e).__name__}: {e})") from None


def report_from_records(rs: RecordSet, where: str, seconds: float | None = None
                        ) -> CertifyReport:
    """The certify report of a record set, samples in index order.  ``seconds``: the
    report's time (default: the sum of the samples' own times)."""
    r = rs.header.report
    samples = sorted(sample_reports(rs.samples, where), key=lambda s: s.index)
    total = sum(s.seconds for s in samples) if seconds is None else seconds
    try:
        return CertifyReport(str(r["model"]), str(r["data"]), tuple(samples), r["eps"],
                             float(r["tolerance"]), int(r["seed"]),
                             tuple(dict(r["settings"]).items()), total)
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"{where}: bad record header ({type(e).__name__}: {e})") from None


def merge_records(paths: Iterable[str | os.PathLike[str]], out: str | os.PathLike[str]
                  ) -> RecordSet:
    """Combine the shards' record files into ``out`` (which must not exist): one key,
    one shard count, disjoint parts, no sample twice.  The merged header covers the
    union of the parts (``shard: null`` once all of them are there)."""
    sets = [(str(p), read_records(p)) for p in paths]
    if not sets:
        raise InputError("merge needs at least one record file")
    first_path, first = sets[0]
    parts: list[int] = []
    count = None
    for p, rs in sets:
        if rs.header.key != first.header.key:
            diff = ", ".join(rs.header.differences(first.header)) or "key"
            raise InputError(f"merge: {p} is of another run than {first_path} ({diff} differ)")
        shard = rs.header.shard
        if shard is None:
            raise InputError(f"merge: {p} holds the whole run, not a shard")
        if count is not None and shard.count != count:
            raise InputError(f"merge: {p} is shard {shard.label()}, the others are of "
                             f"{count} parts")
        count = shard.count
        overlap = set(parts) & set(shard.parts)
        if overlap:
            raise InputError(f"merge: part(s) {', '.join(map(str, sorted(overlap)))} given "
                             f"twice ({p})")
        parts += shard.parts
    assert count is not None
    merged = Shard(count, tuple(parts))
    header = RecordHeader(first.header.identity, first.header.report,
                          None if merged.whole else merged)
    seen: dict[int, str] = {}
    samples: list[dict[str, Any]] = []
    for p, rs in sets:
        for s in rs.samples:
            i = int(s["index"])
            if i in seen:
                raise InputError(f"merge: sample {i} is in {seen[i]} and {p}")
            seen[i] = p
            samples.append(s)
    samples.sort(key=lambda s: int(s["index"]))
    o = Path(out)
    if o.exists():
        raise InputError(f"merge: {o} exists (remove it or choose another --out)")
    writer, _ = open_records(o, header, resume=False)
    with writer:
        for s in samples:
            writer.append_dict(s)
    return RecordSet(header, tuple(samples))
