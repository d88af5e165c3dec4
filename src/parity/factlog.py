"""The fact log: one Parquet dataset per source, partitioned by event date, appended atomically.

Layout under the log's root::

    <source>/_manifest.json                         the committed files (the only truth)
    <source>/event_date=YYYY-MM-DD/part-<batch>.parquet

A reader sees exactly the files the manifest lists. An append writes its files first, then
replaces the manifest with ``os.replace``; a crash or an exception before that leaves the old
manifest, so no partial batch is ever visible. Stray files from an interrupted append are
removed by the next append.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from parity._duck import connect, query_arrow
from parity.definitions import EVENT_TIME, FACT_ID, RECORDED_AT, Source
from parity.errors import InputError, SchemaError
from parity.facts import (
    FactData,
    RecordedAtPolicy,
    canonical_schema,
    normalize_facts,
    tombstones,
)
from parity.timeutil import datetime_to_us, now_us, to_utc_datetime

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


@dataclass(frozen=True)
class IngestReport:
    """What an append did."""

    source: str
    rows_received: int
    rows_written: int
    duplicates_skipped: int
    files: int


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
    ) -> IngestReport:
        """Validate and append facts for ``source``; all or nothing.

        ``recorded_at``: ``"lag"`` (default, a bulk load of history: ``event_time + lag``),
        ``"now"`` (ingestion time) or a datetime; a ``recorded_at`` column in the data wins.
        Rows identical to facts already in the log are skipped, so re-ingesting is harmless.
        """
        facts = normalize_facts(source, data, recorded_at=recorded_at, rename=rename)
        return self.append(source, facts)

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
        """Append canonical facts (from ``normalize_facts``) atomically."""
        expected = canonical_schema(source)
        if not facts.schema.equals(expected):
            raise SchemaError(
                f"source {source.name!r}: append() takes canonical facts; use ingest()"
            )
        folder = self.root / source.name
        folder.mkdir(parents=True, exist_ok=True)
        with _locked(folder):
            manifest = self._load_manifest(source)
            self._check_source_unchanged(source, manifest)
            received = facts.num_rows
            facts = self._skip_known(source, manifest, facts)
            batch = f"{datetime.utcnow():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
            staging = folder / f"_staging-{batch}"
            self._clean_strays(folder, manifest)
            entries = _write_partitions(facts, staging, batch) if facts.num_rows else []
            for entry in entries:
                target = folder / entry.path
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging / entry.path, target)
            shutil.rmtree(staging, ignore_errors=True)
            manifest["files"].extend(entry.__dict__ for entry in entries)
            _write_json_atomic(folder / MANIFEST, manifest)
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

    def paths(self, source: Source | str) -> list[str]:
        """Absolute paths of the committed files of a source."""
        name = source if isinstance(source, str) else source.name
        return [str(self.root / name / entry.path) for entry in self.files(name)]

    def read(self, source: Source) -> pa.Table:
        """All committed facts of a source as one Arrow table (small data, tests, debugging)."""
        paths = self.paths(source)
        if not paths:
            return canonical_schema(source).empty_table()
        return pa.concat_tables([pq.read_table(p, schema=canonical_schema(source)) for p in paths])

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

    def _skip_known(self, source: Source, manifest: dict[str, Any], facts: pa.Table) -> pa.Table:
        """Drop rows already logged; reject different rows with a logged (fact_id, recorded_at)."""
        if facts.num_rows == 0:
            return facts
        recorded = facts.column(RECORDED_AT).cast(pa.int64())
        low, high = pc.min(recorded).as_py(), pc.max(recorded).as_py()
        overlapping = [
            str(self.root / source.name / e["path"])
            for e in manifest["files"]
            if e["max_recorded_at"] >= low and e["min_recorded_at"] <= high
        ]
        if not overlapping:
            return facts
        con = connect()
        con.register("batch", facts)
        con.execute(f"CREATE VIEW logged AS SELECT * FROM read_parquet({overlapping!r})")
        keys = f"b.{FACT_ID} = l.{FACT_ID} AND b.{RECORDED_AT} = l.{RECORDED_AT}"
        same = " AND ".join(f"b.{c} IS NOT DISTINCT FROM l.{c}" for c in facts.column_names)
        conflict = con.execute(
            f"SELECT b.{FACT_ID} FROM batch b JOIN logged l ON {keys} WHERE NOT ({same}) LIMIT 1"
        ).fetchone()
        if conflict:
            raise SchemaError(
                f"source {source.name!r}: fact_id {conflict[0]!r} is already logged with the "
                f"same recorded_at but different values; a correction needs a later recorded_at"
            )
        fresh = query_arrow(con, f"SELECT b.* FROM batch b ANTI JOIN logged l ON {keys}")
        con.close()
        return fresh.cast(facts.schema)

    def _clean_strays(self, folder: Path, manifest: dict[str, Any]) -> None:
        for staging in folder.glob("_staging-*"):
            shutil.rmtree(staging, ignore_errors=True)
        committed = {entry["path"] for entry in manifest["files"]}
        for path in folder.glob("event_date=*/*.parquet"):
            if str(path.relative_to(folder)) not in committed:
                path.unlink()


def _write_partitions(facts: pa.Table, staging: Path, batch: str) -> list[FileEntry]:
    event_us = facts.column(EVENT_TIME).cast(pa.int64())
    day = pc.cast(pc.divide(event_us, 86_400_000_000), pa.int64())
    facts = facts.append_column("_day", day).sort_by([("_day", "ascending")])
    days = facts.column("_day").to_numpy()
    entries: list[FileEntry] = []
    bounds = [0, *((days[1:] != days[:-1]).nonzero()[0] + 1).tolist(), len(days)]
    for start, stop in zip(bounds[:-1], bounds[1:]):
        part = facts.slice(start, stop - start).drop_columns(["_day"])
        date = datetime.utcfromtimestamp(int(days[start]) * 86_400).strftime("%Y-%m-%d")
        relative = f"event_date={date}/part-{batch}.parquet"
        (staging / relative).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(part, staging / relative, compression="zstd")
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
            )
        )
    with open(staging / "_sync", "w") as handle:  # make the data durable before the manifest
        os.fsync(handle.fileno())
    return entries


def _write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "w") as handle:
        json.dump(payload, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    with open(folder / "_lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
