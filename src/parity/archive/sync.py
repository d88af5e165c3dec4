"""From the archive to the fact log: ``export`` to Parquet, and ``sync`` with a watermark.

Why sync rather than reading the archive in place: every engine (DuckDB, Spark later) already
reads the fact log's Parquet, plans on its manifest and is tested against the reference on it;
a synced fact log makes the archive's history one more source of facts for the Time Machine,
with no second reader to keep equal, and batch jobs then never touch the live database.

Exactly once, per source and fact log:

1. **seal** the archive at ``through`` (default now): appends recorded before it are refused
   from then on, and the seal waits for running appends, so the range ``[watermark, through)``
   can no longer change;
2. **export** the versions recorded in that range to a Parquet file under
   ``<fact log>/_archive_sync/`` (one snapshot, paced by the batch budget);
3. **append** the file to the fact log (``FactLog.append`` skips versions it already holds);
4. **advance the watermark** (stored in the archive) to ``through``.

A sync killed anywhere before 4 leaves the watermark where it was; the next run exports the
same range again and step 3 skips what the killed run had appended: no loss, no duplicate.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from parity.archive.archive import Archive
from parity.archive.store import NO_BOUND
from parity.definitions import Source
from parity.errors import StorageError
from parity.factlog import FactLog
from parity.facts import canonical_schema
from parity.timeutil import datetime_to_us, now_us, to_utc_datetime, us_to_datetime

SYNC_FOLDER = "_archive_sync"


@dataclass(frozen=True)
class ExportReport:
    """Versions written to ``path`` (recorded in ``[since, until)``)."""

    source: str
    path: Path
    rows: int


@dataclass(frozen=True)
class SyncReport:
    """One source's sync: the range it covered and what the fact log took."""

    source: str
    since: datetime | None
    through: datetime
    exported: int
    appended: int


def export(
    archive: Archive,
    source: Source | str,
    path: str | Path,
    since: datetime | None = None,
    until: datetime | None = None,
) -> ExportReport:
    """Stream the versions recorded in ``[since, until)`` (corrections and tombstones too) to a
    Parquet file in canonical fact columns; the file appears whole or not at all."""
    src = archive.source(source)
    target = Path(path)
    partial = target.with_name(f".{target.name}.partial")
    rows = 0
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with pq.ParquetWriter(partial, canonical_schema(src)) as writer:
            for chunk in archive.scan(src, since, until):
                writer.write_table(chunk)
                rows += chunk.num_rows
        os.replace(partial, target)
    except OSError as exc:
        raise StorageError(f"cannot write the archive export {target}: {exc}") from exc
    return ExportReport(src.name, target, rows)


def sync(
    archive: Archive,
    log: FactLog,
    sources: Sequence[Source | str] | None = None,
    through: datetime | None = None,
    *,
    on_step: Callable[[str, str], None] | None = None,
) -> list[SyncReport]:
    """Append to ``log`` every version recorded since the last sync and before ``through``
    (default now), once (see the module docstring). ``on_step(source, step)`` is called after
    ``"sealed"``, ``"exported"`` and ``"appended"`` (progress, and kill tests)."""
    names = [archive.source(s).name for s in (sources or archive.sources())]
    bound = now_us() if through is None else datetime_to_us(to_utc_datetime(through, "through"))
    reports = []
    for name in names:
        src = archive.source(name)
        key = watermark_key(name, log)
        stored = archive.store.get_value(key)
        start = int(stored) if stored is not None else -NO_BOUND
        if bound <= start:
            reports.append(SyncReport(name, us_to_datetime(start), us_to_datetime(start), 0, 0))
            continue
        archive.store.seal(name, bound)
        _step(on_step, name, "sealed")
        file = log.root / SYNC_FOLDER / f"{name}-{start}-{bound}.parquet"
        since = us_to_datetime(start) if stored is not None else None
        exported = export(archive, src, file, since, us_to_datetime(bound))
        _step(on_step, name, "exported")
        appended = 0
        for batch in pq.ParquetFile(file).iter_batches(batch_size=100_000):
            table = pa.Table.from_batches([batch]).cast(canonical_schema(src))
            appended += log.append(src, table).rows_written
        _step(on_step, name, "appended")
        archive.store.set_value(key, str(bound))
        file.unlink(missing_ok=True)
        reports.append(SyncReport(name, since, us_to_datetime(bound), exported.rows, appended))
    return reports


def watermark(archive: Archive, source: Source | str, log: FactLog) -> datetime | None:
    """Versions recorded before this are in ``log`` (None: never synced)."""
    stored = archive.store.get_value(watermark_key(archive.source(source).name, log))
    return None if stored is None else us_to_datetime(int(stored))


def watermark_key(source: str, log: FactLog) -> str:
    """The archive setting holding the sync watermark of ``source`` into ``log``."""
    return f"sync:{source}:{log.root.resolve()}"


def _step(on_step: Callable[[str, str], None] | None, source: str, step: str) -> None:
    if on_step is not None:
        on_step(source, step)
