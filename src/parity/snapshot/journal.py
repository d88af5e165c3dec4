"""A snapshot job's folder: its spec, its append-only journal, and its coverage report.

Layout under ``data/snapshots/jobs/<job id>/``::

    job.json         what the job snapshots: source, sample, created (written once, atomically)
    journal.jsonl    one JSON line per finished context and run (fsynced after every batch)
    coverage.json    the last coverage report (atomically replaced)
    contexts.parquet the written contexts with ``at`` just after their snapshot

The fact log, not the journal, says which contexts are written: a fact appended just before a
SIGKILL, whose journal line never reached the disk, is still found (by its fact id) and never
written again. The journal keeps what the fact log cannot: timeouts, errors, schema changes.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from parity.durable import write_json_atomic
from parity.errors import NotFoundError, StateError

if TYPE_CHECKING:
    from parity.workspace import Workspace

OUTCOMES = ("written", "timeouts", "errors", "schema_errors", "pending")
_COLUMN = {"ok": "written", "timeout": "timeouts", "error": "errors",
           "client_error": "errors", "schema": "schema_errors"}


def jobs_dir(workspace: Workspace) -> Path:
    """Where snapshot jobs keep their folders."""
    return workspace.data_dir / "snapshots" / "jobs"


def job_dir(workspace: Workspace, job_id: str, must_exist: bool = True) -> Path:
    """The folder of job ``job_id``; NotFoundError naming the known jobs if it has none."""
    folder = jobs_dir(workspace) / job_id
    if must_exist and not (folder / "job.json").exists():
        known = sorted(p.parent.name for p in jobs_dir(workspace).glob("*/job.json"))
        raise NotFoundError(
            f"no snapshot job {job_id!r}; known jobs: {', '.join(known) or '(none)'}; start one "
            f"with `parity snapshot run SOURCE --sample SAMPLE`"
        )
    return folder


def write_spec(folder: Path, spec: dict[str, Any]) -> None:
    """Create the job folder and its ``job.json`` (atomic)."""
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(folder / "job.json", spec)


def read_spec(folder: Path) -> dict[str, Any]:
    """The job's ``job.json``."""
    spec: dict[str, Any] = json.loads((folder / "job.json").read_text())
    return spec


@contextmanager
def running(folder: Path) -> Iterator[None]:
    """Hold the job's run lock; StateError if another process is running the job now."""
    with open(folder / "_run.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StateError(
                f"snapshot job {folder.name!r} is running in another process; wait for it, or "
                f"stop it before resuming"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def append_lines(
    folder: Path, lines: Sequence[dict[str, Any]], name: str = "journal.jsonl"
) -> None:
    """Append JSON lines and fsync them before returning (a torn last line is ignored on read)."""
    if not lines:
        return
    text = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines)
    with open(folder / name, "a") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def read_lines(folder: Path, name: str = "journal.jsonl") -> list[dict[str, Any]]:
    """Every complete JSON line (a line torn by a crash mid-write is skipped)."""
    path = folder / name
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


@dataclass
class StratumCoverage:
    """Outcomes of one stratum's contexts (each context counted once, by its latest outcome)."""

    contexts: int = 0
    written: int = 0
    timeouts: int = 0
    errors: int = 0
    schema_errors: int = 0
    pending: int = 0


@dataclass
class Coverage:
    """Per-stratum outcomes of a job, with one example message per failure kind."""

    job: str
    source: str
    strata: dict[str, StratumCoverage] = field(default_factory=dict)
    examples: dict[str, str] = field(default_factory=dict)
    calls: int = 0  # attempts made, retries included, over every run

    @property
    def total(self) -> StratumCoverage:
        """The sum over strata."""
        out = StratumCoverage()
        for item in self.strata.values():
            for name in ("contexts", *OUTCOMES):
                setattr(out, name, getattr(out, name) + getattr(item, name))
        return out

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable form (what ``coverage.json`` holds)."""
        return {"job": self.job, "source": self.source, "calls": self.calls,
                "strata": {k: asdict(v) for k, v in self.strata.items()},
                "total": asdict(self.total), "examples": self.examples}


def coverage(
    job: str, source: str, strata: dict[str, str], written: set[str],
    journal: Sequence[dict[str, Any]],
) -> Coverage:
    """Coverage from the contexts (entity id -> stratum), the written entity ids and the journal."""
    latest: dict[str, str] = {}
    out = Coverage(job, source)
    for line in journal:
        latest[line["key"]] = line["status"]
        out.calls += int(line.get("attempts", 1))
        kind = line["status"]
        if kind != "ok" and kind not in out.examples:
            out.examples[kind] = str(line.get("detail", ""))
    for ident, stratum in strata.items():
        item = out.strata.setdefault(stratum, StratumCoverage())
        item.contexts += 1
        if ident in written:
            item.written += 1
            continue
        status = latest.get(ident)
        column = "pending" if status is None or status == "ok" else _COLUMN[status]
        setattr(item, column, getattr(item, column) + 1)
    out.strata = dict(sorted(out.strata.items()))
    return out


def save_coverage(folder: Path, report: Coverage) -> None:
    """Replace ``coverage.json`` atomically."""
    write_json_atomic(folder / "coverage.json", report.to_json())
