"""Compaction of sealed segments into Parquet, and reading the whole log as one Arrow table.

Parts and ``read_log`` use the flat layout of ``columns`` (``seq``, ``request_id``,
``logged_at``, ..., ``key.*``, ``feature.*``, ``request.*``). Each part has its own schema;
``read_log`` unifies them (ints widen to doubles; other conflicts become JSON text).

Compaction writes ``part-<first_seq>-<last_seq>.parquet`` under a temporary name, fsyncs it,
renames it into place (the commit), then deletes the segments. Readers skip any segment whose
first sequence number lies in a part's range, so a crash between the rename and the deletes
neither loses nor duplicates records, and the next ``compact`` deletes the leftovers. A crash
before the rename leaves only a temporary file, which the next ``compact`` removes.

A log with worker folders (``layout``: ``w0/``, ``w1/``, ... written by ``parity serve
--workers N``) is compacted folder by folder and read as the union of its folders, with a
``worker`` column, ordered by ``(logged_at, worker, seq)``.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from parity.errors import ConcurrentChangeError
from parity.featurelog.columns import decode_table, empty_table, unify_tables
from parity.featurelog.layout import WORKER_COLUMN, log_folders, worker_folders
from parity.featurelog.segments import (
    PartFile,
    ReadReport,
    SegmentContents,
    SegmentFile,
    fsync_dir,
    is_covered,
    is_sealed,
    list_parts,
    list_segments,
    part_name,
    read_segment,
)

COMPACT_LOCK = "_compact.lock"
_TEMP_PREFIX = ".tmp-part-"


@dataclass
class CompactReport:
    """What one ``compact`` call did."""

    parts_written: list[str] = field(default_factory=list)
    records: int = 0
    segments_compacted: int = 0
    leftover_segments_removed: int = 0


def compact(root: str | Path, *, part_max_bytes: int = 256 << 20) -> CompactReport:
    """Turn sealed segments under ``root`` into Parquet parts; safe to rerun at any time.

    Consecutive sealed segments are grouped into one part until their total size reaches
    ``part_max_bytes``. Unsealed segments (the live one, or one a crash left that no writer has
    reopened yet) are never touched, and no part spans one. Segments already covered by a part
    are deleted. Runs alongside a live writer; a second concurrent ``compact`` waits. A log
    with worker folders has each of them compacted the same way; the report adds them up.
    """
    report = CompactReport()
    for _worker, folder in log_folders(root):
        _compact_folder(folder, part_max_bytes, report)
    return report


def _compact_folder(folder: Path, part_max_bytes: int, report: CompactReport) -> None:
    if not folder.is_dir():
        return
    with _compaction_lock(folder):
        for path in folder.glob(f"{_TEMP_PREFIX}*"):
            path.unlink()
        parts = list_parts(folder)
        groups: list[list[SegmentFile]] = [[]]
        size = 0
        for segment in list_segments(folder):
            if is_covered(segment.first_seq, parts):
                if is_sealed(segment.path):
                    segment.path.unlink()
                    report.leftover_segments_removed += 1
                continue
            if not is_sealed(segment.path):
                groups.append([])  # a part must not span it
                size = 0
                continue
            groups[-1].append(segment)
            size += segment.path.stat().st_size
            if size >= part_max_bytes:
                groups.append([])
                size = 0
        for group in groups:
            if group:
                _compact_group(folder, group, report)
        if report.leftover_segments_removed:
            fsync_dir(folder)


def _compact_group(folder: Path, group: list[SegmentFile], report: CompactReport) -> None:
    contents = [read_segment(segment) for segment in group]
    tables = list(_tables(contents))
    if tables:
        first = min(c.first_seq for c in contents if c.records)
        last = max(c.last_seq for c in contents if c.records)
        table = unify_tables(tables)
        table = table.replace_schema_metadata(
            {"parity.featurelog": "1", "first_seq": str(first), "last_seq": str(last)}
        )
        target = folder / part_name(first, last)
        temp = folder / f"{_TEMP_PREFIX}{target.name}"
        pq.write_table(table, temp)
        with open(temp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(temp, target)
        fsync_dir(folder)  # the part is committed from here on
        report.parts_written.append(str(target))
        report.records += table.num_rows
    for segment in group:
        segment.path.unlink()
    fsync_dir(folder)
    report.segments_compacted += len(group)


def _tables(contents: list[SegmentContents]) -> Iterator[pa.Table]:
    for c in contents:
        for first_seq, payload in c.batches():
            yield decode_table(payload, first_seq)


@contextmanager
def _compaction_lock(folder: Path) -> Iterator[None]:
    fd = os.open(folder / COMPACT_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def read_log(root: str | Path, report: ReadReport | None = None) -> pa.Table:
    """Every record of the log at ``root``: Parquet parts plus segments not compacted yet.

    Sorted by ``seq``; each record appears exactly once even while ``compact`` runs or after it
    crashed half-way. Torn tails of unsealed segments are skipped and counted in ``report``.

    A log with worker folders (``parity serve --workers N``) reads as the union of the root
    and every worker folder, with an int64 ``worker`` column after ``seq`` (the folder's index;
    null for records in the root folder, which sort first), sorted by ``(logged_at, worker,
    seq)``; ``seq`` is unique within a worker, so ``(worker, seq)`` identifies a record.
    """
    if not worker_folders(root):
        return _read_folder(Path(root), report)
    tables = []
    for worker, folder in log_folders(root):
        table = _read_folder(folder, report)
        if table.num_rows:
            column = pa.array([worker] * table.num_rows, pa.int64())
            tables.append(table.add_column(1, WORKER_COLUMN, column))
    if not tables:
        return empty_table().add_column(1, WORKER_COLUMN, pa.array([], pa.int64()))
    # The root folder's records (worker null) first at equal times, as in read_segments.
    return unify_tables(tables).sort_by(
        [("logged_at", "ascending"), (WORKER_COLUMN, "ascending", "at_start"),
         ("seq", "ascending")])


def _read_folder(folder: Path, report: ReadReport | None) -> pa.Table:
    """One folder's parts and segments, sorted by ``seq`` (retries around a compaction)."""
    for _attempt in range(5):
        segments = list_segments(folder)  # segments before parts: see the except below
        parts = list_parts(folder)
        local = ReadReport()
        try:
            table = _read(segments, parts, local)
        except FileNotFoundError:
            # A compaction committed a part after we listed parts, then deleted a segment we
            # meant to read. Listing again finds that part.
            continue
        if report is not None:
            for name in ("segments", "records", "torn_segments", "torn_bytes"):
                setattr(report, name, getattr(report, name) + getattr(local, name))
            report.torn_files.extend(local.torn_files)
        return table
    raise ConcurrentChangeError(
        f"feature log {folder}: files kept changing while reading (a compaction is running); "
        f"read again"
    )


def _read(segments: list[SegmentFile], parts: list[PartFile], report: ReadReport) -> pa.Table:
    tables = [pq.read_table(part.path) for part in parts]
    contents = []
    for segment in segments:
        if not is_covered(segment.first_seq, parts):
            contents.append(read_segment(segment))
            report.add(contents[-1])
    tables.extend(_tables(contents))
    if not tables:
        return empty_table()
    return unify_tables(tables).sort_by("seq")
