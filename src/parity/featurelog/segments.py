"""On-disk layout of a feature log: framed record batches in append-only segment files.

Layout under the log's root::

    segment-<first_seq>.log               frames; seq = first_seq + position in the file
    part-<first_seq>-<last_seq>.parquet   compacted records (see ``compact``)
    _writer.lock                          held (flock) by the one live writer

A segment starts with an 8-byte file header, then frames. A frame is::

    kind (u8) | payload length (u32 LE) | crc32 of the payload (u32 LE) | payload

A **batch** frame's payload is a record count (u32 LE) and the records as an Arrow IPC stream
(``columns.encode_table``); the writer appends one per group of same-shaped records it takes
from its queue. A writer closes a segment by appending a **seal** frame whose payload is
``first_seq (u64) | record count (u64)``; a sealed segment never changes again. Sequence
numbers start at 1 and are unique over the log's lifetime, across segments and Parquet parts.

Reading (``read_segment``):

- a **sealed** segment must be intact: a bad frame raises ``CorruptSegmentError`` naming the file
  and the byte offset (nothing is skipped silently in closed data);
- an **unsealed** segment (the live one, or one left by a crash) ends at its first bad or short
  frame: that torn tail is skipped and reported in ``ReadReport.torn_segments``/``torn_bytes``.
  Records after it were never acknowledged as durable, since frames are written in order and
  ``durable_seq`` only advances after an fsync. The unit of loss is a frame (one batch).
"""

from __future__ import annotations

import fcntl
import os
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pyarrow as pa

from parity.errors import CorruptSegmentError, LogLockedError
from parity.featurelog.columns import decode_table, payload_count, table_records
from parity.featurelog.layout import scan, worker_folders
from parity.featurelog.record import FeatureLogRecord

FILE_HEADER = b"PFLOG01\n"
BATCH = 0xB1
SEAL = 0x5E
HEADER = struct.Struct("<BII")
SEAL_BODY = struct.Struct("<QQ")
SEAL_SIZE = HEADER.size + SEAL_BODY.size
MAX_PAYLOAD = 1 << 28  # a frame claiming more is garbage, not a record
WRITER_LOCK = "_writer.lock"

_SEGMENT_RE = re.compile(r"^segment-(\d{20})\.log$")
_PART_RE = re.compile(r"^part-(\d{20})-(\d{20})\.parquet$")
_pack_header = HEADER.pack
_crc32 = zlib.crc32


def segment_name(first_seq: int) -> str:
    """File name of the segment whose first record has sequence number ``first_seq``."""
    return f"segment-{first_seq:020d}.log"


def part_name(first_seq: int, last_seq: int) -> str:
    """File name of the Parquet part holding records ``first_seq`` to ``last_seq`` inclusive."""
    return f"part-{first_seq:020d}-{last_seq:020d}.parquet"


def frame(kind: int, payload: bytes) -> bytes:
    """One frame: header (kind, length, crc32) followed by ``payload``."""
    return _pack_header(kind, len(payload), _crc32(payload)) + payload


def seal_frame(first_seq: int, count: int) -> bytes:
    """The frame that closes a segment of ``count`` records starting at ``first_seq``."""
    return frame(SEAL, SEAL_BODY.pack(first_seq, count))


@dataclass(frozen=True)
class SegmentFile:
    """A segment file and the sequence number of its first record."""

    path: Path
    first_seq: int


@dataclass(frozen=True)
class PartFile:
    """A compacted Parquet part and the (inclusive) range of sequence numbers it holds."""

    path: Path
    first_seq: int
    last_seq: int


def list_segments(root: str | Path) -> list[SegmentFile]:
    """Segments under ``root``, oldest first (empty if the folder does not exist)."""
    found = [SegmentFile(path, int(match.group(1))) for path, match in scan(root, _SEGMENT_RE)]
    return sorted(found, key=lambda s: s.first_seq)


def list_parts(root: str | Path) -> list[PartFile]:
    """Committed Parquet parts under ``root``, oldest first."""
    found = [PartFile(path, int(match.group(1)), int(match.group(2)))
             for path, match in scan(root, _PART_RE)]
    return sorted(found, key=lambda p: p.first_seq)


def is_covered(first_seq: int, parts: list[PartFile]) -> bool:
    """Whether a segment starting at ``first_seq`` was already compacted into one of ``parts``."""
    return any(p.first_seq <= first_seq <= p.last_seq for p in parts)


def is_sealed(path: Path) -> bool:
    """Whether the segment at ``path`` ends with a valid seal frame (checks only the tail)."""
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        if size < len(FILE_HEADER) + SEAL_SIZE:
            return False
        f.seek(size - SEAL_SIZE)
        return _is_seal(memoryview(f.read(SEAL_SIZE)))


def _is_seal(tail: memoryview) -> bool:
    kind, length, crc = HEADER.unpack_from(tail)
    return (
        kind == SEAL
        and length == SEAL_BODY.size
        and crc == _crc32(tail[HEADER.size :])
    )


@dataclass
class SegmentContents:
    """The verified records of one segment file."""

    path: Path
    first_seq: int
    sealed: bool
    payloads: list[memoryview]  # one per batch frame, in file order
    counts: list[int]  # records in each payload
    valid_end: int  # byte offset just past the last good batch frame
    torn_bytes: int  # bytes after valid_end that are not a good frame (unsealed only)

    @property
    def records(self) -> int:
        """Number of readable records."""
        return sum(self.counts)

    @property
    def last_seq(self) -> int:
        """Sequence number of the last record (first_seq - 1 when empty)."""
        return self.first_seq + self.records - 1

    def batches(self) -> Iterator[tuple[int, memoryview]]:
        """(seq of its first record, payload) of every batch frame."""
        seq = self.first_seq
        for count, payload in zip(self.counts, self.payloads, strict=True):
            yield seq, payload
            seq += count


@dataclass
class ReadReport:
    """What reading segments found; filled in while records are read."""

    segments: int = 0
    records: int = 0
    torn_segments: int = 0
    torn_bytes: int = 0
    torn_files: list[str] = field(default_factory=list)

    def add(self, contents: SegmentContents) -> None:
        """Count one segment that was read."""
        self.segments += 1
        self.records += contents.records
        if contents.torn_bytes:
            self.torn_segments += 1
            self.torn_bytes += contents.torn_bytes
            self.torn_files.append(str(contents.path))


def read_segment(segment: SegmentFile) -> SegmentContents:
    """Read and verify one segment (see the module docstring for the rules).

    Raises CorruptSegmentError for a bad frame, a bad file header or a wrong seal in a sealed
    segment, naming the file and byte offset.
    """
    data = memoryview(segment.path.read_bytes())
    sealed = _ends_with_seal(data)
    size = len(data)
    if bytes(data[: len(FILE_HEADER)]) != FILE_HEADER:
        if sealed:
            raise _corrupt(segment.path, 0, "the file does not start with a segment header")
        # A crash while the file was being created: nothing in it was ever durable.
        return SegmentContents(segment.path, segment.first_seq, False, [], [], 0, size)
    payloads: list[memoryview] = []
    counts: list[int] = []
    offset = len(FILE_HEADER)
    limit = size - SEAL_SIZE if sealed else size
    while offset < limit:
        problem, end = _check_frame(data, offset, limit)
        if problem is not None:
            if sealed:
                raise _corrupt(segment.path, offset, problem)
            break
        payload = data[offset + HEADER.size : end]
        payloads.append(payload)
        counts.append(payload_count(payload))
        offset = end
    if sealed:
        first, count = SEAL_BODY.unpack_from(data, size - SEAL_BODY.size)
        if first != segment.first_seq or count != sum(counts):
            raise _corrupt(
                segment.path,
                size - SEAL_SIZE,
                f"the seal says {count} records from seq {first}, the file holds "
                f"{sum(counts)} from seq {segment.first_seq}",
            )
        return SegmentContents(segment.path, segment.first_seq, True, payloads, counts, limit, 0)
    return SegmentContents(segment.path, segment.first_seq, False, payloads, counts, offset,
                           size - offset)


def _check_frame(data: memoryview, offset: int, limit: int) -> tuple[str | None, int]:
    """(problem or None, end offset) of the batch frame at ``offset``."""
    if offset + HEADER.size > limit:
        return f"short frame header ({limit - offset} of {HEADER.size} bytes)", limit
    kind, length, crc = HEADER.unpack_from(data, offset)
    if kind != BATCH:
        return f"unknown frame kind 0x{kind:02x}", limit
    end = offset + HEADER.size + length
    if length < 4 or length > MAX_PAYLOAD or end > limit:
        return f"frame of {length} bytes runs past the end of the data", limit
    payload = data[offset + HEADER.size : end]
    if _crc32(payload) != crc:
        return "crc32 mismatch", limit
    return None, end


def _ends_with_seal(data: memoryview) -> bool:
    if len(data) < len(FILE_HEADER) + SEAL_SIZE:
        return False
    return _is_seal(data[len(data) - SEAL_SIZE :])


def _corrupt(path: Path, offset: int, problem: str) -> CorruptSegmentError:
    return CorruptSegmentError(
        f"feature log segment {path} is corrupt at byte {offset}: {problem}. It is sealed, so "
        f"this is damage, not a torn write. Restore it from a backup, or move it aside to read "
        f"the rest of the log (its records will be missing)"
    )


def iter_segment_tables(
    root: str | Path, report: ReadReport | None = None, *, skip_compacted: bool = True
) -> Iterator[pa.Table]:
    """Every readable batch in the segments under ``root``, oldest first, with a ``seq`` column.

    Segments already covered by a Parquet part are skipped unless ``skip_compacted`` is False.
    Torn tails are counted in ``report``.
    """
    report = report if report is not None else ReadReport()
    parts = list_parts(root) if skip_compacted else []
    for segment in list_segments(root):
        if is_covered(segment.first_seq, parts):
            continue
        contents = read_segment(segment)
        report.add(contents)
        for first_seq, payload in contents.batches():
            yield decode_table(payload, first_seq)


def read_segments(
    root: str | Path, report: ReadReport | None = None, *, skip_compacted: bool = True
) -> Iterator[FeatureLogRecord]:
    """Every readable record in the segment files under ``root``, in ``seq`` order.

    Verifies every frame's crc32. Torn tails of unsealed segments are skipped and counted in
    ``report`` (pass a ``ReadReport`` to see them); damage inside a sealed segment raises
    CorruptSegmentError. Segments already compacted into Parquet are skipped by default; use
    ``read_log`` to read both. Each record comes back with exactly the fields it was logged
    with, and with its ``seq``.

    A log with worker folders (``layout``) yields the union of its folders' records, ordered
    by ``(logged_at, worker, seq)``; each ``seq`` is then unique only within its folder (use
    ``read_log`` for a table with the ``worker`` column).
    """
    workers = worker_folders(root)
    if not workers:
        for table in iter_segment_tables(root, report, skip_compacted=skip_compacted):
            yield from table_records(table)
        return
    keyed: list[tuple[tuple[datetime, int, int, int], FeatureLogRecord]] = []
    for index, (worker, folder) in enumerate([(None, Path(root)), *workers]):
        rank = -1 if worker is None else worker  # the root folder's records sort first
        for table in iter_segment_tables(folder, report, skip_compacted=skip_compacted):
            keyed.extend(((r.logged_at, rank, r.seq or 0, index), r)
                         for r in table_records(table))
    keyed.sort(key=lambda pair: pair[0])
    for _key, record in keyed:
        yield record


def fsync_dir(folder: Path) -> None:
    """Make file creations, renames and deletions in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def lock_writer(root: Path) -> int:
    """Take the writer lock of the log at ``root``; return its file descriptor.

    Raises LogLockedError when another writer holds it. The lock dies with its process, so a
    crashed writer never blocks the next one.
    """
    fd = os.open(root / WRITER_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise LogLockedError(
            f"feature log {root} already has a writer (another process or FeatureLogWriter "
            f"holds {root / WRITER_LOCK}); use one writer per log folder, or give each process "
            f"its own folder"
        ) from None
    return fd


def unlock_writer(fd: int) -> None:
    """Release a lock taken by ``lock_writer``."""
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


@dataclass(frozen=True)
class RecoveryReport:
    """What opening a writer repaired: unsealed segments left by a crash."""

    segments_sealed: int
    segments_removed: int
    torn_bytes: int
    next_seq: int


def recover(root: Path) -> RecoveryReport:
    """Seal every unsealed segment under ``root``; return the next free sequence number.

    Must be called with the writer lock held. A torn tail is truncated away (it was never
    durable) and the segment sealed, so it can be compacted; a segment left with no records is
    removed. Everything is fsynced before this returns.
    """
    sealed = removed = torn = 0
    last_seq = max((p.last_seq for p in list_parts(root)), default=0)
    for segment in list_segments(root):
        if is_sealed(segment.path):
            contents_last = _sealed_last_seq(segment.path, segment.first_seq)
            last_seq = max(last_seq, contents_last)
            continue
        contents = read_segment(segment)
        torn += contents.torn_bytes
        if not contents.records:
            segment.path.unlink()
            removed += 1
            continue
        with open(segment.path, "r+b") as f:
            f.truncate(contents.valid_end)
            f.seek(contents.valid_end)
            f.write(seal_frame(segment.first_seq, contents.records))
            f.flush()
            os.fsync(f.fileno())
        sealed += 1
        last_seq = max(last_seq, contents.last_seq)
    if sealed or removed:
        fsync_dir(root)
    return RecoveryReport(sealed, removed, torn, last_seq + 1)


def _sealed_last_seq(path: Path, first_seq: int) -> int:
    with open(path, "rb") as f:
        f.seek(-SEAL_BODY.size, os.SEEK_END)
        _first, count = SEAL_BODY.unpack(f.read(SEAL_BODY.size))
    return int(first_seq + count - 1)
