"""Every backend gives the same records: this process, ``--jobs 2`` local workers, and a
real local 2-worker Ray cluster; a worker that dies costs only its sample, which runs
again once and is recorded as ``error`` when it kills its worker twice."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.runs.jobs import FAST, killing
from verinet import api, examples
from verinet.certify.result import SampleStatus
from verinet.cli import main
from verinet.runs.dataset import Backend, run_dataset
from verinet.runs.sample import SampleJob
from verinet.runs.source import ModelSource

N = 4
# A generous budget: the stages' shares of it are far above what they need, so no sample's
# result depends on how fast its worker ran (Ray's start-up loads the machine).
CERTIFY = ["certify", "--eps", "0.03", "--radius", "--samples", str(N), "--attacks", "fmn",
           "--timeout", "60", "--no-progress"]


def _same(a: dict[int, dict], b: dict[int, dict]) -> None:
    assert sorted(a) == sorted(b)
    for i in a:
        bad = sorted(k for k in set(a[i]) | set(b[i]) if a[i].get(k) != b[i].get(k))
        assert not bad, f"sample {i} differs in {bad}: {[(a[i].get(k), b[i].get(k)) for k in bad]}"


def _records(path: Path) -> dict[int, dict]:
    lines = path.read_text().splitlines()
    out = {}
    for ln in lines[1:]:
        d = json.loads(ln)
        out[d["index"]] = {k: v for k, v in d.items() if k not in ("seconds", "timings")}
    assert len(out) == len(lines) - 1  # no sample twice
    return out


@pytest.fixture(scope="module")
def inline(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("inline") / "r.jsonl"
    assert main([*CERTIFY, "--jobs", "1", "--records", str(path)]) == 0
    return path


def test_jobs_2_records_equal_jobs_1(tmp_path: Path, inline: Path, capsys) -> None:
    path = tmp_path / "r.jsonl"
    assert main([*CERTIFY, "--jobs", "2", "--records", str(path)]) == 0
    _same(_records(path), _records(inline))
    assert sorted(_records(path)) == list(range(N))
    head = [json.loads(p.read_text().splitlines()[0])["key"] for p in (path, inline)]
    assert head[0] == head[1]  # the worker count is not part of a run's identity
    out = capsys.readouterr().out
    rows = [ln.split()[0] for ln in out.splitlines() if ln[:1] == " " and ln.split()[0].isdigit()]
    assert sorted(rows) == [str(i) for i in range(N)]


def test_ray_records_equal_jobs_1(tmp_path: Path, inline: Path) -> None:
    pytest.importorskip("ray")
    path = tmp_path / "r.jsonl"
    assert main([*CERTIFY, "--ray", "--jobs", "2", "--records", str(path)]) == 0
    _same(_records(path), _records(inline))


def test_ray_started_early_is_shut_down_when_the_data_is_bad(tmp_path: Path, capsys) -> None:
    """--ray starts the cluster while the model loads (the options were checked first); a
    data file that does not fit the model still exits 2 with one line, and the cluster
    this run started is gone."""
    ray = pytest.importorskip("ray")
    bad = tmp_path / "bad.csv"
    bad.write_text("1,0.5,0.5\n")  # 2 values per sample, the model takes 64
    assert main(["certify", str(examples.model_path()), "--data", str(bad), "--eps", "0.03",
                 "--ray", "--jobs", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("verinet: error: ") and "64" in err[-1]
    assert not ray.is_initialized()


@pytest.fixture(scope="module")
def digits():
    model = api.load_model(examples.model_path())
    data = np.load(examples.data_path())
    return model, data["x"][:N].reshape(N, -1).astype(np.float64), data["y"][:N]


def _run(job: SampleJob, digits, backend: Backend):
    model, x, y = digits
    return run_dataset(job, model.network, model.onnx_eval, x, y,
                       source=ModelSource(str(examples.model_path())), backend=backend)


def _strip(r) -> tuple:
    return (r.index, r.status, r.radius, r.message)


@pytest.fixture(scope="module")
def reference(digits):
    return _run(SampleJob("certify", certify=FAST), digits, Backend(jobs=1))


def test_a_worker_killed_mid_sample_costs_only_that_sample(tmp_path: Path, digits,
                                                            reference) -> None:
    job = killing(tmp_path, {1: 1, 3: 2})  # sample 1 dies once, sample 3 twice
    report = _run(job, digits, Backend(jobs=2))
    by = {r.index: r for r in report.samples}
    assert sorted(by) == list(range(N))
    for i in (0, 1, 2):  # sample 1 ran again and equals the uninterrupted run
        assert _strip(by[i]) == _strip(reference.samples[i])
    assert by[3].status is SampleStatus.ERROR
    assert by[3].message == "its worker died (signal 9) on 2 attempts"
    assert len(list(tmp_path.glob("1-*"))) == 1 and len(list(tmp_path.glob("3-*"))) == 2


def test_a_sample_past_the_task_timeout_has_its_worker_killed(tmp_path: Path, digits,
                                                              reference) -> None:
    job = killing(tmp_path, {0: 2, 2: 1}, hang=True)
    report = _run(job, digits, Backend(jobs=2, task_timeout=10.0))
    by = {r.index: r for r in report.samples}
    assert by[0].status is SampleStatus.ERROR
    assert by[0].message == "it ran past the task timeout of 10 s on 2 attempts"
    assert _strip(by[2]) == _strip(reference.samples[2])


def test_a_ray_worker_killed_mid_sample_is_retried(tmp_path: Path, digits,
                                                    reference) -> None:
    ray = pytest.importorskip("ray")
    import tests.runs.jobs as jobs

    ray.cloudpickle.register_pickle_by_value(jobs)  # the workers need not import tests/
    try:
        report = _run(killing(tmp_path, {0: 1, 2: 2}), digits, Backend(jobs=2, ray="local"))
    finally:
        ray.cloudpickle.unregister_pickle_by_value(jobs)
    by = {r.index: r for r in report.samples}
    assert sorted(by) == list(range(N))
    for i in (0, 1, 3):
        assert _strip(by[i]) == _strip(reference.samples[i])
    assert by[2].status is SampleStatus.ERROR
    assert by[2].message.startswith("its Ray worker died") and "on 2 attempts" in by[2].message
