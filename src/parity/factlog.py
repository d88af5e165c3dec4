"""The fact log: one Parquet dataset per source, partitioned by event date, appended atomically.

Layout under the log's root::

    <source>/_manifest.json                         the committed files (the only truth)
    <source>/event_date=YYYY-MM-DD/part-<batch>.parquet

A reader sees exactly the files the manifest lists. An append writes its files first, then
replaces the manifest with ``os.replace``; a crash or an exception before that leaves the old
manifest, so no partial batch is ever visible. Stray files from an interrupted append are
removed by the next append.

Durability order (so that a power cut cannot leave a manifest naming data that never reached
the disk): every new data file is fsynced, then every folder that gained an entry (each
partition folder, and the source folder when a partition folder is new); then the new manifest
is written to a temporary file and fsynced, swapped in with ``os.replace``, and the source
folder is fsynced so that the swap itself is durable before ``append`` returns.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from parity.definitions import EVENT_TIME, FACT_ID, RECORDED_AT, Source
from parity.durable import fsync_dir, fsync_file, locked, storage_error, write_json_atomic
from parity.errors import InputError, ParityError, SchemaError
from parity.factlog_dedup import skip_known
from parity.facts import (
    FactData,
    RecordedAtPolicy,
    canonical_schema,
    normalize_facts,
    select_columns,
    tombstones,
)
from parity.frames import read_data
from parity.timeutil import datetime_to_us, now_us, to_utc_datetime, us_to_datetime

MANIFEST = "_manifest.json"


@dataclass(frozen=True)
class FileEntry:
    """One committed Parquet file and the ranges of its time columns (epoch microseconds)."""

    path: str
    rows: int
    min_event_time: int
    max_event_time: int
    min_recorded_at: int
    max_recorded_at: int
    #: True when parity derived the fact ids from content (no fact_id column was given); False
    #: when the ids were given, or unknown (files written before this was recorded).
    generated_ids: bool = False


@dataclass(frozen=True)
class IngestReport:
    """What an append did."""

    source: str
    rows_received: int
    rows_written: int
    duplicates_skipped: int
    files: int
    #: Columns the caller asked to drop (``drop``/``drop_extra``); never dropped otherwise.
    columns_dropped: tuple[str, ...] = ()


@dataclass(frozen=True)
class SourceSummary:
    """What the fact log holds for one source, from its manifest (no data file is read).

    ``rows`` counts stored fact versions: corrections and tombstones are rows too.
    Times are None when the source holds no facts.
    """

    source: str
    rows: int
    files: int
    min_event_time: datetime | None
    max_event_time: datetime | None
    latest_recorded_at: datetime | None


class FactLog:
    """Append-only, atomically committed Parquet facts, one dataset per source."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def ingest(
        self,
        source: Source,
        data: FactData,
        recorded_at: RecordedAtPolicy = "lag",
        rename: dict[str, str] | None = None,
        *,
        drop: Sequence[str] = (),
        drop_extra: bool = False,
        tz: str | None = None,
    ) -> IngestReport:
        """Validate and append facts for ``source``; all or nothing.

        ``recorded_at``: ``"lag"`` (default, a bulk load of history: ``event_time + lag``),
        ``"now"`` (ingestion time) or a datetime; a ``recorded_at`` column in the data wins.
        ``rename``/``drop``/``drop_extra``/``tz``: see ``normalize_facts``; a column the source
        does not know is an error unless dropped on request.
        Rows identical to facts already in the log are skipped, so re-ingesting is harmless; a
        batch whose facts equal logged ones except for their ``fact_id``, where one side's ids
        were derived by parity and the other's given, is refused: that is the same data under
        two id schemes and would double the source. Two facts with equal content and two
        *given* ids are two facts (two identical purchases), and both are kept.
        """
        table = read_data(data, "facts")
        table, dropped = select_columns(source, table, rename, drop, drop_extra)
        generated = FACT_ID not in table.column_names
        facts = normalize_facts(source, table, recorded_at=recorded_at, tz=tz)
        report = self._append(source, facts, ids_generated=generated)
        return replace(report, columns_dropped=dropped)

    def delete(
        self,
        source: Source,
        fact_ids: Sequence[str],
        recorded_at: datetime | None = None,
    ) -> IngestReport:
        """Tombstone ``fact_ids`` from ``recorded_at`` (default now) on; earlier views keep them."""
        ids = [str(i) for i in fact_ids]
        current = self.read(source)
        known = current.filter(pc.is_in(current.column(FACT_ID), pa.array(ids, pa.string())))
        found = set(known.column(FACT_ID).to_pylist())
        missing = [i for i in ids if i not in found]
        if missing:
            raise InputError(
                f"source {source.name!r}: cannot delete unknown fact_id {missing[0]!r}"
                f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}"
            )
        # One tombstone per fact id; it inherits keys and event_time of the latest version.
        latest = known.sort_by([(FACT_ID, "ascending"), (RECORDED_AT, "descending")])
        first = pc.invert(pc.equal(latest.column(FACT_ID)[:-1], latest.column(FACT_ID)[1:]))
        mask = (
            pa.concat_arrays([pa.array([True]), first.combine_chunks()])
            if latest.num_rows
            else pa.array([], pa.bool_())
        )
        latest = latest.filter(mask)
        at = (
            datetime_to_us(to_utc_datetime(recorded_at, "recorded_at")) if recorded_at else now_us()
        )
        rows = tombstones(
            source, latest, latest.column(FACT_ID).to_pylist(), latest.column(EVENT_TIME), at
        )
        return self.append(source, rows)

    def append(self, source: Source, facts: pa.Table) -> IngestReport:
        """Append canonical facts (from ``normalize_facts``) atomically.

        Unlike ``ingest`` this does not look for the same data under another id scheme: the
        online path and other writers append facts whose ids are already decided.
        """
        return self._append(source, facts, ids_generated=None)

    def _append(self, source: Source, facts: pa.Table, ids_generated: bool | None) -> IngestReport:
        expected = canonical_schema(source)
        if not facts.schema.equals(expected):
            raise SchemaError(
                f"source {source.name!r}: append() takes canonical facts; use ingest()"
            )
        folder = self.root / source.name
        try:
            return self._appendlocked(source, folder, facts, ids_generated)
        except ParityError:
            raise
        except OSError as exc:
            raise storage_error(exc, folder) from exc

    def _appendlocked(
        self, source: Source, folder: Path, facts: pa.Table, ids_generated: bool | None
    ) -> IngestReport:
        if not folder.exists():
            folder.mkdir(parents=True, exist_ok=True)
            fsync_dir(folder.parent)
        with locked(folder):
            manifest = self._load_manifest(source)
            self._check_source_unchanged(source, manifest)
            received = facts.num_rows
            facts = skip_known(self.root / source.name, source, manifest, facts, ids_generated)
            batch = f"{datetime.utcnow():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
            self._clean_strays(folder, manifest)
            entries = (
                _write_partitions(facts, folder, batch, bool(ids_generated))
                if facts.num_rows else []
            )
            manifest["files"].extend(entry.__dict__ for entry in entries)
            write_json_atomic(folder / MANIFEST, manifest)
        return IngestReport(
            source.name, received, facts.num_rows, received - facts.num_rows, len(entries)
        )

    def files(self, source: Source | str) -> list[FileEntry]:
        """The committed files of a source (empty if nothing was ingested)."""
        name = source if isinstance(source, str) else source.name
        path = self.root / name / MANIFEST
        if not path.exists():
            return []
        data = json.loads(path.read_text())
        return [FileEntry(**entry) for entry in data["files"]]

    def paths(self, source: Source | str, recorded_before: int | None = None) -> list[str]:
        """Absolute paths of the committed files of a source.

        With ``recorded_before`` (epoch us), only files holding a version recorded before it:
        the others cannot change anything a reader at that time sees.
        """
        name = source if isinstance(source, str) else source.name
        return [
            str(self.root / name / entry.path)
            for entry in self.files(name)
            if recorded_before is None or entry.min_recorded_at < recorded_before
        ]

    def read(self, source: Source) -> pa.Table:
        """All committed facts of a source as one Arrow table (small data, tests, debugging)."""
        paths = self.paths(source)
        if not paths:
            return canonical_schema(source).empty_table()
        return pa.concat_tables([pq.read_table(p, schema=canonical_schema(source)) for p in paths])

    def summary(self, source: Source | str) -> SourceSummary:
        """Row count, file count and time ranges of a source's committed facts."""
        name = source if isinstance(source, str) else source.name
        entries = self.files(name)

        def when(values: list[int]) -> datetime | None:
            return us_to_datetime(values[0]) if values else None

        return SourceSummary(
            name,
            sum(e.rows for e in entries),
            len(entries),
            when(sorted(e.min_event_time for e in entries)),
            when(sorted((e.max_event_time for e in entries), reverse=True)),
            when(sorted((e.max_recorded_at for e in entries), reverse=True)),
        )

    def reset(self, source: Source | str) -> int:
        """Remove every fact of a source, keeping its recorded definition; return rows removed.

        The manifest is swapped for an empty one first (atomic: readers see all or nothing),
        then the data files are deleted. The source's stored schema stays, so a later ingest
        is still checked against it.
        """
        name = source if isinstance(source, str) else source.name
        folder = self.root / name
        if not (folder / MANIFEST).exists():
            return 0
        with locked(folder):
            manifest: dict[str, Any] = json.loads((folder / MANIFEST).read_text())
            removed = sum(int(entry["rows"]) for entry in manifest["files"])
            manifest["files"] = []
            write_json_atomic(folder / MANIFEST, manifest)
            self._clean_strays(folder, manifest)
            for partition in folder.glob("event_date=*"):
                if partition.is_dir() and not any(partition.iterdir()):
                    partition.rmdir()
        return removed

    def remove(self, source: Source | str) -> int:
        """Delete a source's folder: facts, manifest and recorded definition; return rows removed.

        The folder is first renamed out of the way (atomic), so readers see the source either
        whole or absent; afterwards the name is free for a source with another definition.
        """
        name = source if isinstance(source, str) else source.name
        folder = self.root / name
        if not folder.exists():
            return 0
        removed = sum(entry.rows for entry in self.files(name))
        with locked(folder):
            trash = self.root / f".deleted-{name}-{uuid.uuid4().hex[:8]}"
            os.replace(folder, trash)
            fsync_dir(self.root)
        shutil.rmtree(trash, ignore_errors=True)
        return removed

    def sources(self) -> list[str]:
        """Names of sources that have a manifest."""
        if not self.root.exists():
            return []
        return sorted(p.parent.name for p in self.root.glob(f"*/{MANIFEST}"))

    def _load_manifest(self, source: Source) -> dict[str, Any]:
        path = self.root / source.name / MANIFEST
        if path.exists():
            manifest: dict[str, Any] = json.loads(path.read_text())
            return manifest
        return {
            "source": source.spec(),
            "schema": canonical_schema(source).to_string(),
            "files": [],
        }

    def _check_source_unchanged(self, source: Source, manifest: dict[str, Any]) -> None:
        stored = manifest.get("schema")
        if stored and stored != canonical_schema(source).to_string():
            raise SchemaError(
                f"source {source.name!r}: its definition no longer matches the facts already "
                f"logged under {self.root / source.name}; give the changed source a new name"
            )

    def _clean_strays(self, folder: Path, manifest: dict[str, Any]) -> None:
        for staging in folder.glob("_staging-*"):
            shutil.rmtree(staging, ignore_errors=True)
        committed = {entry["path"] for entry in manifest["files"]}
        for path in folder.glob("event_date=*/*.parquet"):
            if str(path.relative_to(folder)) not in committed:
                path.unlink()


def _write_partitions(
    facts: pa.Table, folder: Path, batch: str, generated_ids: bool = False
) -> list[FileEntry]:
    """Write one file per event date under ``folder``; durable (file and folder fsynced)."""
    event_us = facts.column(EVENT_TIME).cast(pa.int64())
    day = pc.cast(pc.divide(event_us, 86_400_000_000), pa.int64())
    facts = facts.append_column("_day", day).sort_by([("_day", "ascending")])
    days = facts.column("_day").to_numpy()
    entries: list[FileEntry] = []
    new_folder = False
    bounds = [0, *((days[1:] != days[:-1]).nonzero()[0] + 1).tolist(), len(days)]
    for start, stop in zip(bounds[:-1], bounds[1:]):
        part = facts.slice(start, stop - start).drop_columns(["_day"])
        date = datetime.utcfromtimestamp(int(days[start]) * 86_400).strftime("%Y-%m-%d")
        relative = f"event_date={date}/part-{batch}.parquet"
        target = folder / relative
        new_folder |= not target.parent.exists()
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_parquet(part, target)
        fsync_file(target)
        fsync_dir(target.parent)
        times = part.column(EVENT_TIME).cast(pa.int64())
        recorded = part.column(RECORDED_AT).cast(pa.int64())
        entries.append(
            FileEntry(
                path=relative,
                rows=part.num_rows,
                min_event_time=pc.min(times).as_py(),
                max_event_time=pc.max(times).as_py(),
                min_recorded_at=pc.min(recorded).as_py(),
                max_recorded_at=pc.max(recorded).as_py(),
                generated_ids=generated_ids,
            )
        )
    if new_folder:  # the new partition folders' entries in the source folder
        fsync_dir(folder)
    return entries


def _write_parquet(part: pa.Table, path: Path) -> None:
    pq.write_table(part, path, compression="zstd")
