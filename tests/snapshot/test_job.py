"""The snapshot job against a real loopback service: faults, retries, rate limit, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import parity as pt
from parity.cli import main
from parity.snapshot import JobOptions, Sampler, job_status, run_job
from parity.snapshot.journal import read_lines
from parity.snapshot.sampling import Sample
from tests.snapshot.service import LiveService, answer
from tests.snapshot.workspace import T0, make_workspace

ROOT = Path(__file__).resolve().parents[2]
FAST = JobOptions(concurrency=4, backoff_s=0.001)


def sample_all(ws: pt.Workspace, n: int | None = None) -> Sample:
    """Every customer (or the first n), stratified by country."""
    profiles = ws.fact_log.read(ws.definitions.source("profiles")).select(
        ["customer_id", "country"])
    if n is not None:
        profiles = profiles.slice(0, n)
    customer = ws.definitions.entities["customer"]
    return Sampler(["country"], default_rate=1.0, seed=0).sample(ws, customer, profiles, at=T0)


def stored(ws: pt.Workspace) -> pa.Table:
    return ws.fact_log.read(ws.definitions.source("recs"))


def test_every_context_is_written_once_with_snapshot_times(workspace: pt.Workspace) -> None:
    sample = sample_all(workspace)
    report = run_job(workspace, "recs", sample, options=FAST)
    facts = stored(workspace)
    assert facts.num_rows == 30 and report.coverage.total.written == 30
    assert facts.column("event_time").equals(facts.column("recorded_at"))
    assert set(facts.column("schema_version").to_pylist()) == {1}
    row = next(r for r in facts.to_pylist() if r["customer_id"] == 7)
    assert (row["top_item"], row["score"], row["items"]) == (
        answer(7)["top_item"], answer(7)["score"], answer(7)["items"])
    again = run_job(workspace, resume=report.job, options=FAST)  # nothing left to do
    assert (again.called, again.skipped) == (0, 30)
    assert stored(workspace).num_rows == 30
    coverage = json.loads((report.folder / "coverage.json").read_text())
    assert coverage["total"]["written"] == 30 and set(coverage["strata"]) == {"UK", "FR", "DE"}


def test_5xx_then_success_is_retried_and_written(
    workspace: pt.Workspace, service: LiveService
) -> None:
    service.faults.statuses[3] = [503, 502]
    report = run_job(workspace, "recs", sample_all(workspace, 5), options=FAST)
    assert service.calls[3] == 3
    assert report.coverage.total.written == 5 and report.coverage.calls == 7


def test_timeouts_are_retried_then_counted_not_written(
    tmp_path: Path, service: LiveService
) -> None:
    ws = make_workspace(tmp_path / "ws", service.url, timeout="100ms")
    service.faults.delay_s[2] = 0.5
    report = run_job(ws, "recs", sample_all(ws, 4), options=JobOptions(retries=2,
                                                                       backoff_s=0.001))
    assert service.calls[2] == 3  # the first try and two retries
    assert report.coverage.total.timeouts == 1 and report.coverage.total.written == 3
    assert 2 not in stored(ws).column("customer_id").to_pylist()
    assert "within" in report.coverage.examples["timeout"]


def test_4xx_malformed_json_and_schema_changes_are_never_retried_or_written(
    workspace: pt.Workspace, service: LiveService
) -> None:
    service.faults.statuses[1] = [404]
    service.faults.malformed.add(2)
    service.faults.schema_change.update({3, 6})
    report = run_job(workspace, "recs", sample_all(workspace, 6), options=FAST)
    assert [service.calls[k] for k in (1, 2, 3, 6)] == [1, 1, 1, 1]
    assert sorted(stored(workspace).column("customer_id").to_pylist()) == [4, 5]
    total = report.coverage.total
    assert (total.written, total.errors, total.schema_errors) == (2, 2, 2)
    # customers 3 and 6 are both in stratum DE (i % 3 == 2): counted there, with an example
    assert report.coverage.strata["DE"].schema_errors == 2
    assert "'score'" in report.coverage.examples["schema"]
    assert "expected float, found str" in report.coverage.examples["schema"]
    assert job_status(workspace, report.job).to_json() == report.coverage.to_json()


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0
        self.lock = threading.Lock()

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.t += seconds


def test_the_rate_limit_is_respected_counting_calls_on_a_fake_clock(tmp_path: Path) -> None:
    clock = FakeClock()
    seen: list[float] = []
    customer = pt.Entity("customer", {"customer_id": int})

    def call(context: dict[str, int]) -> dict[str, object]:
        seen.append(clock.now())
        return answer(context["customer_id"])

    recs = pt.LiveSource("recs", customer, {"top_item": str, "score": float,
                                            "items": "list<struct<item:str,score:float>>"},
                         call=call)
    ws = make_workspace(tmp_path / "ws", "http://127.0.0.1:9/{customer_id}")
    options = JobOptions(concurrency=4, rate=5.0, clock=clock.now, sleep=clock.sleep)
    report = run_job(ws, recs, sample_all(ws, 20), options=options)
    assert len(seen) == 20
    assert clock.t >= 19 / 5  # 20 calls at 5/s with a burst of 1 take at least 3.8 s
    # a token bucket's promise: by time T at most burst + rate * T calls have started
    for k, t in enumerate(sorted(seen)):
        assert k + 1 <= 1 + 5.0 * t + 1e-9, (k, t)
    # a source not in the definitions is given again to resume; nothing is left to call
    assert run_job(ws, recs, resume=report.job, options=options).called == 0
    assert job_status(ws, report.job, recs).total.written == 20


def test_bad_options_and_unknown_jobs_are_named(workspace: pt.Workspace) -> None:
    with pytest.raises(pt.ConfigError, match="concurrency"):
        run_job(workspace, "recs", sample_all(workspace, 1), options=JobOptions(concurrency=0))
    with pytest.raises(pt.NotFoundError, match="no snapshot job"):
        run_job(workspace, resume="snap-nope")
    with pytest.raises(pt.DefinitionError, match="not a LiveSource"):
        run_job(workspace, "profiles", sample_all(workspace, 1))
    other = pt.Entity("member", {"member_id": int})
    members = Sampler(["c"], default_rate=1.0).sample(
        workspace, other, pa.table({"member_id": [1], "c": ["x"]}))
    with pytest.raises(pt.ConfigError, match="no column 'customer_id'"):
        run_job(workspace, "recs", members)
    result = CliRunner().invoke(main, ["-w", str(workspace.root), "snapshot", "status", "nope"])
    assert result.exit_code == 2 and "no snapshot job 'nope'" in result.output


def test_cli_sample_run_status(workspace: pt.Workspace) -> None:
    runner = CliRunner()
    base = ["-w", str(workspace.root), "snapshot"]
    result = runner.invoke(main, [*base, "sample", "customers", "--strata",
                                  "country,tenure_band", "--default-rate", "1",
                                  "--at", T0.isoformat()])
    assert result.exit_code == 0, result.output
    sample_id = result.output.split("sample ")[-1].split(":")[0]
    result = runner.invoke(main, [*base, "run", "recs", "--sample", sample_id,
                                  "--concurrency", "4"])
    assert result.exit_code == 0, result.output
    assert "30 context(s) called" in result.output
    job = result.output.split("job ")[-1].split(":")[0]
    result = runner.invoke(main, [*base, "status", job, "--json"])
    assert json.loads(result.output)["total"]["written"] == 30
    result = runner.invoke(main, [*base, "sample", "customers", "--strata", "country",
                                  "--rate", "UK"])
    assert result.exit_code == 2 and "STRATUM=VALUE" in result.output


KILLED_JOB = """
import sys
import parity as pt
from parity.snapshot import JobOptions, run_job
ws = pt.open(sys.argv[1])
run_job(ws, "recs", sys.argv[2], options=JobOptions(concurrency=3, batch=1))
"""


def test_a_sigkilled_job_resumes_with_every_context_exactly_once(
    workspace: pt.Workspace, service: LiveService
) -> None:
    service.faults.default_delay_s = 0.02
    sample = sample_all(workspace)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    child = subprocess.Popen([sys.executable, "-c", KILLED_JOB, str(workspace.root), sample.id],
                             env=env, stderr=subprocess.PIPE)
    jobs = workspace.data_dir / "snapshots" / "jobs"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and child.poll() is None:
        folders = list(jobs.glob("snap-*"))
        if folders and len(read_lines(folders[0])) >= 8:
            break
        time.sleep(0.005)
    assert child.poll() is None, child.stderr.read() if child.stderr else ""
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    (folder,) = jobs.glob("snap-*")
    before = stored(workspace).num_rows
    assert 8 <= before < 30  # killed mid-job
    calls_before = Counter(service.calls)
    report = run_job(workspace, resume=folder.name, options=FAST)
    facts = stored(workspace)
    ids = facts.column("customer_id").to_pylist()
    assert sorted(ids) == list(range(1, 31))  # every context exactly once
    assert len(set(facts.column("fact_id").to_pylist())) == 30
    assert report.skipped == before and report.called == 30 - before
    written_before = {r["key"] for r in read_lines(folder)[:8]}
    for key in written_before:  # a context written before the kill was never called again
        assert service.calls[json.loads(key)[0]] == calls_before[json.loads(key)[0]]
    contexts = pq.read_table(folder / "contexts.parquet")
    assert contexts.num_rows == 30
