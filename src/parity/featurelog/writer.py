"""The feature log writer: a bounded queue in front of one background thread that appends.

``log()`` only takes a lock and appends to an in-memory queue; encoding, writing and fsync
happen on the writer thread, so the serving path never waits for the disk (it does share the
GIL with the writer thread). The thread takes everything queued, encodes it in chunks of up to
``fsync_every_records`` records as Arrow batches (one per record shape, see ``columns``),
appends each as one frame (see ``segments``) with one ``write``, and fsyncs in batches: after
``fsync_every_records`` records or ``fsync_every_ms`` after the first unsynced write, whichever
comes first. Segments rotate when the next frame would push them past ``segment_max_bytes``
(a single larger frame gets a segment of its own) or when they are older than
``segment_max_age_s``; a rotated segment is sealed and never changes again.

Full queue (``queue_size`` records waiting to be written):

- ``on_full="drop"`` (default): ``log()`` returns False at once and counts the record in
  ``records_dropped``. Serving latency wins over completeness; watch the counter.
- ``on_full="block"``: ``log()`` waits until the writer has taken the queue. Nothing is lost,
  but a slow disk slows the callers down. Use it for backfills and tests, not for serving.

Durability: ``durable_seq`` is the sequence number of the last record known fsynced; every
record with a smaller or equal sequence number survives a crash of the process or machine.
A write error (disk full, I/O error) is counted in ``write_errors``; the records not yet
durable at that moment are counted in ``records_lost`` and the writer continues in a fresh
segment. One writer per folder: a second one raises LogLockedError.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal
from zlib import crc32 as _crc32

from parity.errors import FeatureLogConfigError, ParityError, WriterClosedError
from parity.featurelog.columns import encode_batches
from parity.featurelog.record import FeatureLogRecord
from parity.featurelog.sampling import KeySampler
from parity.featurelog.segments import (
    BATCH,
    FILE_HEADER,
    HEADER,
    RecoveryReport,
    fsync_dir,
    lock_writer,
    recover,
    seal_frame,
    segment_name,
    unlock_writer,
)

MiB = 1 << 20
OnFull = Literal["drop", "block"]
_pack_header = HEADER.pack






@dataclass
class _Segment:
    """The open segment file; touched only by the writer thread."""

    fd: int
    path: Path
    first_seq: int
    opened_at: float
    size: int
    count: int = 0


class FeatureLogWriter:
    """Appends feature log records to segment files under ``root`` from a background thread.

    Opening a writer repairs what a crash left (see ``segments.recover``) and continues the
    sequence numbers in a new segment. Close it (or use it as a context manager) to write,
    fsync and seal everything queued.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        queue_size: int = 10_000,
        on_full: OnFull = "drop",
        fsync_every_ms: float = 50,
        fsync_every_records: int = 1000,
        segment_max_bytes: int = 64 * MiB,
        segment_max_age_s: float = 300,
        sample_rate: float = 1.0,
        sample_salt: str = "",
    ) -> None:
        _check_config(queue_size, on_full, fsync_every_ms, fsync_every_records,
                      segment_max_bytes, segment_max_age_s)
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._queue_size = queue_size
        self._on_full = on_full
        self._fsync_every_s = fsync_every_ms / 1000
        self._fsync_every_records = fsync_every_records
        self._segment_max_bytes = segment_max_bytes
        self._segment_max_age_s = segment_max_age_s
        self._sampler = KeySampler(sample_rate, sample_salt)
        self._sample_all = self._sampler.rate >= 1.0
        self._lock_fd = lock_writer(self.root)
        try:
            self.recovery: RecoveryReport = recover(self.root)
        except BaseException:
            unlock_writer(self._lock_fd)
            raise
        # Shared with callers; guarded by _lock.
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._settled_cv = threading.Condition(self._lock)
        self._buffer: list[FeatureLogRecord] = []
        self._accepted = 0
        self._dropped = 0
        self._sampled_out = 0
        self._settled = 0  # accepted records now durable, unencodable or lost
        self._durable_seq = self.recovery.next_seq - 1
        self._closing = False
        self._closed = False
        self._flush_requested = False
        self._idle = False
        self._dead = False  # the writer thread stopped (a bug); log() then drops
        # Owned by the writer thread; read without the lock by stats().
        self._next_seq = self.recovery.next_seq
        self._segment: _Segment | None = None
        self._synced_seq = self.recovery.next_seq - 1
        self._taken = 0
        self._done = 0
        self._unsynced = 0
        self._unsynced_since = 0.0
        self._written = 0
        self._bytes = 0
        self._fsyncs = 0
        self._encode_errors = 0
        self._write_errors = 0
        self._lost = 0
        self._segments_opened = 0
        self._segments_sealed = 0
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="parity-featurelog", daemon=True)
        self._thread.start()

    # -- caller side -------------------------------------------------------------------------

    def log(self, record: FeatureLogRecord) -> bool:
        """Queue ``record``; return False if it is sampled out or dropped on a full queue.

        Never touches the disk. With ``on_full="block"`` it waits while the queue is full.
        Raises WriterClosedError after ``close()``.
        """
        if not self._sample_all and not self._sampler(record.keys):
            with self._lock:
                self._sampled_out += 1
            return False
        with self._lock:
            if self._closing:
                raise self._closed_error()
            if self._dead:
                self._dropped += 1
                return False
            if len(self._buffer) >= self._queue_size:
                if self._on_full == "drop":
                    self._dropped += 1
                    return False
                while len(self._buffer) >= self._queue_size and not (self._closing or self._dead):
                    self._not_full.wait()
                if self._closing:
                    raise self._closed_error()
                if self._dead:
                    self._dropped += 1
                    return False
            self._buffer.append(record)
            self._accepted += 1
            if self._idle:
                self._work.notify()
        return True

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every record accepted so far is fsynced (or failed); False on timeout."""
        with self._lock:
            target = self._accepted
            if self._closed or self._settled >= target:
                return self._settled >= target
            self._flush_requested = True
            self._work.notify()
            self._settled_cv.wait_for(lambda: self._settled >= target or self._dead, timeout)
            return self._settled >= target

    def close(self, timeout: float | None = None) -> None:
        """Write, fsync and seal everything queued, stop the thread and release the folder.

        Idempotent. Raises ParityError if the thread has not finished within ``timeout``.
        """
        with self._lock:
            if self._closed:
                return
            self._closing = True
            self._work.notify()
            self._not_full.notify_all()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise ParityError(
                f"feature log writer {self.root}: still writing after {timeout}s; call close() "
                f"again to wait longer"
            )
        with self._lock:
            self._closed = True
        unlock_writer(self._lock_fd)

    @property
    def durable_seq(self) -> int:
        """Sequence number of the last record known fsynced (0 when none ever was)."""
        return self._durable_seq

    def stats(self) -> dict[str, int]:
        """Counters for monitoring (monotonic except ``queue_depth``), one dict per call."""
        with self._lock:
            queue_depth = len(self._buffer)
            logged, dropped, sampled_out = self._accepted, self._dropped, self._sampled_out
            durable = self._durable_seq
        return {
            "records_logged": logged,
            "records_dropped": dropped,
            "records_sampled_out": sampled_out,
            "records_written": self._written,
            "records_lost": self._lost,
            "encode_errors": self._encode_errors,
            "write_errors": self._write_errors,
            "bytes_written": self._bytes,
            "fsyncs": self._fsyncs,
            "segments_opened": self._segments_opened,
            "segments_sealed": self._segments_sealed,
            "queue_depth": queue_depth,
            "durable_seq": durable,
            "recovered_torn_bytes": self.recovery.torn_bytes,
            "writer_alive": int(not self._dead),
        }

    def __enter__(self) -> FeatureLogWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _closed_error(self) -> WriterClosedError:
        return WriterClosedError(
            f"feature log writer {self.root} is closed; open a new FeatureLogWriter to log more"
        )

    # -- writer thread -----------------------------------------------------------------------
    #
    # Accounting: every record taken from the queue is first "pending", then "done" (appended
    # to the file, failed to encode, or lost to a write error). Appended records stay
    # "unsynced" until the next fsync. Records that are done and not unsynced are settled,
    # which is what flush() waits for.

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # a bug: make it visible, and never leave callers hanging
            self.last_error = f"writer thread died: {type(exc).__name__}: {exc}"
            raise
        finally:
            with self._lock:
                self._dead = True
                self._settled_cv.notify_all()
                self._not_full.notify_all()

    def _loop(self) -> None:
        while True:
            with self._lock:
                while not (self._buffer or self._closing or self._flush_requested):
                    timeout = self._wait_timeout()
                    if timeout is not None and timeout <= 0:
                        break
                    self._idle = True
                    self._work.wait(timeout)
                    self._idle = False
                batch, self._buffer = self._buffer, []
                if batch:
                    self._not_full.notify_all()
                closing = self._closing
                force = closing or self._flush_requested
                self._flush_requested = False
            self._taken += len(batch)
            try:
                step = self._fsync_every_records
                for start in range(0, len(batch), step):
                    self._write(batch[start : start + step])
                    self._sync(force=False)
                self._sync(force=force)
                if closing:
                    self._seal()
                else:
                    self._rotate_if_old()
            except OSError as exc:
                self._fail(exc)
            self._publish()
            if closing:
                return

    def _fail(self, exc: OSError) -> None:
        """Count what a write error costs, drop the segment, and carry on in a new one."""
        self._write_errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        self._lost += self._unsynced + (self._taken - self._done)
        self._done = self._taken
        self._unsynced = 0
        self._abandon_segment()
        time.sleep(0.05)  # a full or failing disk should not turn into a hot loop

    def _publish(self) -> None:
        with self._lock:
            self._durable_seq = self._synced_seq
            self._settled = self._done - self._unsynced
            self._settled_cv.notify_all()

    def _write(self, records: list[FeatureLogRecord]) -> None:
        payloads, failures = encode_batches(records)
        for record, exc in failures:
            self._encode_errors += 1
            self._done += 1
            request_id = getattr(record, "request_id", "?")
            self.last_error = f"record {request_id!r} not logged: {type(exc).__name__}: {exc}"
        for count, payload in payloads:
            data = _pack_header(BATCH, len(payload), _crc32(payload)) + payload
            segment = self._segment
            if segment is None:
                segment = self._open_segment()
            elif segment.count and segment.size + len(data) > self._segment_max_bytes:
                self._seal()
                segment = self._open_segment()
            self._append(segment, data, count)

    def _append(self, segment: _Segment, data: bytes, count: int) -> None:
        # Reserve the sequence numbers first: if the write fails half-way, a frame that did
        # reach the file keeps numbers no later segment reuses.
        segment.count += count
        self._next_seq += count
        view = memoryview(data)
        while view:
            view = view[os.write(segment.fd, view) :]
        if not self._unsynced:
            self._unsynced_since = time.monotonic()
        segment.size += len(data)
        self._unsynced += count
        self._done += count
        self._written += count
        self._bytes += len(data)

    def _sync(self, force: bool) -> None:
        if self._unsynced and (
            force
            or self._unsynced >= self._fsync_every_records
            or time.monotonic() - self._unsynced_since >= self._fsync_every_s
        ):
            self._fsync()

    def _fsync(self, always: bool = False) -> None:
        if self._segment is not None and (self._unsynced or always):
            os.fsync(self._segment.fd)
            self._fsyncs += 1
        self._unsynced = 0
        self._synced_seq = self._next_seq - 1
        self._publish()

    def _wait_timeout(self) -> float | None:
        now = time.monotonic()
        deadlines = []
        if self._unsynced:
            deadlines.append(self._unsynced_since + self._fsync_every_s - now)
        if self._segment is not None:
            deadlines.append(self._segment.opened_at + self._segment_max_age_s - now)
        return min(deadlines) if deadlines else None

    def _open_segment(self) -> _Segment:
        path = self.root / segment_name(self._next_seq)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        segment = _Segment(fd, path, self._next_seq, time.monotonic(), len(FILE_HEADER))
        self._segment = segment  # from here on a failure abandons it properly
        self._segments_opened += 1
        os.write(fd, FILE_HEADER)
        fsync_dir(self.root)
        return segment

    def _seal(self) -> None:
        segment = self._segment
        if segment is None:
            return
        os.write(segment.fd, seal_frame(segment.first_seq, segment.count))
        self._fsync(always=True)  # the seal must reach the disk too
        os.close(segment.fd)
        self._segment = None
        self._segments_sealed += 1

    def _rotate_if_old(self) -> None:
        segment = self._segment
        if segment is not None and time.monotonic() - segment.opened_at >= self._segment_max_age_s:
            self._seal()

    def _abandon_segment(self) -> None:
        """Leave the segment unsealed after a write error; the next writer repairs it."""
        segment = self._segment
        if segment is None:
            return
        self._segment = None
        with contextlib.suppress(OSError):
            os.close(segment.fd)
        if segment.count == 0:  # free its name for the next segment, which starts at the same seq
            try:
                segment.path.unlink()
            except OSError:
                self._next_seq += 1


def _check_config(
    queue_size: int,
    on_full: str,
    fsync_every_ms: float,
    fsync_every_records: int,
    segment_max_bytes: int,
    segment_max_age_s: float,
) -> None:
    problems = []
    if queue_size < 1:
        problems.append(f"queue_size={queue_size} must be at least 1")
    if on_full not in ("drop", "block"):
        problems.append(f"on_full={on_full!r} must be 'drop' or 'block'")
    if fsync_every_ms <= 0:
        problems.append(f"fsync_every_ms={fsync_every_ms} must be positive")
    if fsync_every_records < 1:
        problems.append(f"fsync_every_records={fsync_every_records} must be at least 1")
    if segment_max_bytes < 4096:
        problems.append(f"segment_max_bytes={segment_max_bytes} must be at least 4096")
    if segment_max_age_s <= 0:
        problems.append(f"segment_max_age_s={segment_max_age_s} must be positive")
    if problems:
        raise FeatureLogConfigError("FeatureLogWriter: " + "; ".join(problems))


