"""The snapshot job: call a live source for every context of a sample and store the answers.

``run_job`` calls the service with bounded concurrency (a thread pool of ``concurrency``), a
token-bucket rate limit (``rate`` calls per second, shared by the threads), per-call timeouts
(the source's), and retries with exponential backoff on timeouts, 5xx and connection errors
(never on a 4xx, malformed JSON or a schema change). Valid answers are appended to the fact log
in batches, as facts of the live source with ``event_time = recorded_at =`` the moment the
answer arrived and the fact id ``snapshot_fact_id(job, entity)``; then the batch's outcomes are
journaled (``parity.snapshot.journal``). A job killed at any point is resumed by running it
again with ``resume=<job id>``: contexts whose fact is in the log are skipped, every other one
is called, so each context is written exactly once. Responses with a schema change are counted
per stratum, reported with an example, and never written.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from parity.contexts import AT
from parity.definitions import EVENT_TIME, FACT_ID
from parity.errors import ConfigError, DefinitionError
from parity.snapshot import journal
from parity.snapshot.live import CallResult, LiveSource, context_of
from parity.snapshot.rows import (
    entity_ident,
    snapshot_fact_id,
    snapshot_facts,
    write_parquet_atomic,
)
from parity.snapshot.sampling import STRATUM, Sample, load_sample
from parity.timeutil import TIMESTAMP_TYPE, now_us, us_to_datetime

if TYPE_CHECKING:
    from parity.workspace import Workspace

ProgressFn = Callable[[int, int], None]  # (finished so far, total to do in this run)


@dataclass(frozen=True)
class JobOptions:
    """How a job calls the service. ``rate`` is calls per second (None: unlimited)."""

    concurrency: int = 8
    rate: float | None = None
    retries: int = 3
    backoff_s: float = 0.05
    batch: int = 256  # answers per fact-log append (also appended every 2 s)
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep

    def check(self) -> None:
        """ConfigError naming the first option out of range."""
        if not isinstance(self.concurrency, int) or self.concurrency < 1:
            raise ConfigError(f"snapshot job: concurrency must be an int >= 1, got "
                              f"{self.concurrency!r}")
        if self.rate is not None and not self.rate > 0:
            raise ConfigError(f"snapshot job: rate must be > 0 calls per second (or unset), "
                              f"got {self.rate!r}")
        if not isinstance(self.retries, int) or self.retries < 0:
            raise ConfigError(f"snapshot job: retries must be an int >= 0, got {self.retries!r}")
        if self.backoff_s < 0:
            raise ConfigError(f"snapshot job: backoff_s must be >= 0, got {self.backoff_s!r}")
        if self.batch < 1:
            raise ConfigError(f"snapshot job: batch must be >= 1, got {self.batch!r}")


@dataclass(frozen=True)
class JobReport:
    """What a run did, and the job's coverage after it."""

    job: str
    folder: Path
    skipped: int  # contexts already written by an earlier run of the job
    called: int  # contexts called in this run
    coverage: journal.Coverage


def run_job(
    workspace: Workspace,
    source: str | LiveSource | None = None,
    sample: str | Sample | None = None,
    resume: str | None = None,
    options: JobOptions | None = None,
    progress: ProgressFn | None = None,
) -> JobReport:
    """Snapshot ``source`` over ``sample`` as a new job, or resume job ``resume``.

    A source given as an object (not declared in the workspace's definitions) must be given
    again to resume. Returns the coverage report (also written to the job folder as
    ``coverage.json``).
    """
    options = options or JobOptions()
    options.check()
    if resume is not None:
        folder = journal.job_dir(workspace, resume)
        spec = journal.read_spec(folder)
        if isinstance(source, LiveSource) and source.name != spec["source"]:
            raise ConfigError(f"job {resume!r} snapshots source {spec['source']!r}, not "
                              f"{source.name!r}; resume it with that source")
        live = source if isinstance(source, LiveSource) else _live_source(workspace,
                                                                            spec["source"])
        chosen = load_sample(workspace, spec["sample"])
    else:
        if source is None or sample is None:
            raise ConfigError("snapshot job: give a source and a sample, or resume=<job id>")
        live = source if isinstance(source, LiveSource) else _live_source(workspace, source)
        chosen = sample if isinstance(sample, Sample) else load_sample(workspace, sample)
        job_id = f"snap-{us_to_datetime(now_us()):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
        folder = journal.job_dir(workspace, job_id, must_exist=False)
        journal.write_spec(folder, {"job": job_id, "source": live.name, "sample": chosen.id,
                                    "created": now_us()})
    with journal.running(folder):
        return _run(workspace, folder, live, chosen, options, progress)


def _run(workspace: Workspace, folder: Path, live: LiveSource, sample: Sample,
         options: JobOptions, progress: ProgressFn | None) -> JobReport:
    job = folder.name
    missing = [k for k in live.entity.keys if k not in sample.table.column_names]
    if missing:
        raise ConfigError(
            f"sample {sample.id!r} is about entity {sample.entity!r} and has no column "
            f"{missing[0]!r}, a key of live source {live.name!r}; sample entity "
            f"{live.entity.name!r} instead"
        )
    contexts = [context_of(live.entity, row) for row in sample.table.to_pylist()]
    strata = dict(zip((_ident(live, c) for c in contexts),
                      sample.table.column(STRATUM).to_pylist()))
    written = written_ids(workspace, live, job, contexts)
    todo = [c for c in contexts if _ident(live, c) not in written]
    limiter = _SharedLimiter(options)
    done = 0
    pending: list[tuple[dict[str, Any], CallResult, int, int]] = []
    flushed = [time.monotonic()]

    def flush() -> None:
        batch = pending[:]
        pending.clear()  # a failed append leaves these unwritten: a resume calls them again
        ok = [(c, r.row, taken, snapshot_fact_id(job, live, c))
              for c, r, _, taken in batch if r.status == "ok" and r.row is not None]
        if ok:
            workspace.fact_log.append(live, snapshot_facts(live, ok))
            written.update(_ident(live, c) for c, *_ in ok)
        journal.append_lines(folder, [
            {"key": _ident(live, c), "stratum": strata[_ident(live, c)], "status": r.status,
             "detail": r.detail[:300], "latency_ms": round(r.latency_s * 1e3, 3),
             "attempts": attempts}
            for c, r, attempts, _ in batch
        ])

    with ThreadPoolExecutor(options.concurrency, thread_name_prefix="parity-snapshot") as pool:
        futures = [pool.submit(_call_with_retries, live, c, options, limiter) for c in todo]
        try:
            for future in as_completed(futures):
                pending.append(future.result())
                done += 1
                if len(pending) >= options.batch or time.monotonic() - flushed[0] > 2:
                    flush()
                    flushed[0] = time.monotonic()
                if progress is not None:
                    progress(done, len(todo))
        finally:
            for future in futures:
                future.cancel()
            flush()
    report = journal.coverage(job, live.name, strata, written, journal.read_lines(folder))
    journal.save_coverage(folder, report)
    write_parquet_atomic(job_contexts(workspace, live, job, sample), folder / "contexts.parquet")
    return JobReport(job, folder, len(contexts) - len(todo), len(todo), report)


def _call_with_retries(
    live: LiveSource, context: dict[str, Any], options: JobOptions, limiter: _SharedLimiter
) -> tuple[dict[str, Any], CallResult, int, int]:
    attempts = 0
    while True:
        limiter.acquire()
        attempts += 1
        result = live.fetch(context)
        taken = now_us()
        if not result.retryable or attempts > options.retries:
            return context, result, attempts, taken
        options.sleep(options.backoff_s * 2 ** (attempts - 1))


class _SharedLimiter:
    """One token per call, ``rate`` tokens a second, a burst of one; shared by the threads.

    (Not ``parity.hulk.ratelimit``: importing ``parity.hulk`` costs half a second.)
    """

    def __init__(self, options: JobOptions) -> None:
        self._rate = options.rate
        self._clock = options.clock
        self._sleep = options.sleep
        self._next = options.clock()  # when the next call may start
        self._lock = threading.Lock()

    def acquire(self) -> None:
        if self._rate is None:
            return
        with self._lock:  # holding the lock while waiting paces every thread
            now = self._clock()
            if self._next > now:
                self._sleep(self._next - now)
                now = self._clock()
            self._next = max(self._next, now) + 1 / self._rate


def written_ids(
    workspace: Workspace, live: LiveSource, job: str, contexts: list[dict[str, Any]]
) -> set[str]:
    """The entity ids of ``contexts`` whose snapshot by ``job`` is in the fact log."""
    by_fact = {snapshot_fact_id(job, live, c): _ident(live, c) for c in contexts}
    paths = workspace.fact_log.paths(live)
    if not paths or not by_fact:
        return set()
    ids = pa.concat_tables([pq.read_table(p, columns=[FACT_ID]) for p in paths])
    found = ids.filter(pc.is_in(ids.column(FACT_ID), pa.array(list(by_fact), pa.string())))
    return {by_fact[f] for f in found.column(FACT_ID).to_pylist()}


def job_contexts(workspace: Workspace, live: LiveSource, job: str, sample: Sample) -> pa.Table:
    """The sample's written contexts with ``at`` one microsecond after their snapshot.

    At that ``at`` the snapshot is visible (strictly before); a training set over these
    contexts sees exactly what the job stored.
    """
    contexts = sample.table.drop_columns([AT]) if AT in sample.table.column_names else sample.table
    facts = workspace.fact_log.read(live)
    ids = [snapshot_fact_id(job, live, context_of(live.entity, r)) for r in contexts.to_pylist()]
    lookup = dict(zip(facts.column(FACT_ID).to_pylist(),
                      facts.column(EVENT_TIME).cast(pa.int64()).to_pylist()))
    keep = [i for i, f in enumerate(ids) if f in lookup]
    out = contexts.take(pa.array(keep, pa.int64()))
    times = pa.array([lookup[ids[i]] + 1 for i in keep], pa.int64()).cast(TIMESTAMP_TYPE)
    return out.append_column(AT, times)


def job_status(
    workspace: Workspace, job_id: str, source: LiveSource | None = None
) -> journal.Coverage:
    """The coverage of job ``job_id`` now (from its journal and the fact log).

    ``source``: the live source object, when it is not declared in the definitions.
    """
    folder = journal.job_dir(workspace, job_id)
    spec = journal.read_spec(folder)
    live = source if source is not None else _live_source(workspace, spec["source"])
    sample = load_sample(workspace, spec["sample"])
    contexts = [context_of(live.entity, row) for row in sample.table.to_pylist()]
    strata = dict(zip((_ident(live, c) for c in contexts),
                      sample.table.column(STRATUM).to_pylist()))
    written = written_ids(workspace, live, job_id, contexts)
    return journal.coverage(job_id, live.name, strata, written, journal.read_lines(folder))


def _ident(live: LiveSource, context: Mapping[str, Any]) -> str:
    return entity_ident([context[k] for k in live.entity.keys])


def _live_source(workspace: Workspace, name: str) -> LiveSource:
    source = workspace.definitions.source(name)
    if not isinstance(source, LiveSource):
        raise DefinitionError(
            f"source {name!r} is a {type(source).__name__}, not a LiveSource: only live sources "
            f"are snapshotted; declare it with pt.LiveSource(..., call=... or url=...)"
        )
    return source
