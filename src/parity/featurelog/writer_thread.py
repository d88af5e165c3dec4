"""The feature log writer's background thread: take the queue, encode, append, fsync, rotate.

``WriterThread`` is the writer-thread half of ``FeatureLogWriter`` (see ``writer`` for the
contract): the state it owns, the loop that drains the queue, the accounting that settles
records (durable, unencodable or lost) and the segment life cycle (open, append, seal, abandon
after a write error). ``FeatureLogWriter`` holds the caller half and the shared state below.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path
from zlib import crc32 as _crc32

from parity.featurelog.columns import LogSchema, encode_batches
from parity.featurelog.ledger import Ledger
from parity.featurelog.record import FeatureLogRecord
from parity.featurelog.segment_file import (
    OpenSegment,
    abandon_segment,
    create_segment,
    start_segment,
)
from parity.featurelog.segments import BATCH, HEADER, seal_frame

# Module-level so that tests can inject faults (ENOSPC, EIO) into the writer alone.
_os_write = os.write
_os_fsync = os.fsync
_pack_header = HEADER.pack


class WriterThread:
    """The writer-thread half of ``FeatureLogWriter``; not usable on its own."""

    # Set by FeatureLogWriter.__init__; the queue and its conditions are shared with callers
    # and guarded by _lock.
    root: Path
    _schema: LogSchema | None
    _fsync_every_s: float
    _fsync_every_records: int
    _segment_max_bytes: int
    _segment_max_age_s: float
    _lock: threading.Lock
    _work: threading.Condition
    _not_full: threading.Condition
    _settled_cv: threading.Condition
    _buffer: list[FeatureLogRecord]
    _closing: bool
    _flush_requested: bool
    _idle: bool
    _lingering: bool
    _batch_records: int
    _dead: bool
    _durable_seq: int
    _settled: int
    _ledger: Ledger

    def _init_thread_state(self, next_seq: int) -> None:
        """Set the writer thread's own state; ``next_seq`` continues the recovered log."""
        # Owned by the writer thread; read without the lock by stats().
        self._next_seq = next_seq
        self._segment: OpenSegment | None = None
        self._synced_seq = next_seq - 1
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
        self._written_ordinal = 0  # last ordinal handed to _write
        self._synced_ordinal = 0  # last ordinal settled (durable or failed)
        self._failed_pending: list[tuple[int, int]] = []  # failed intervals not yet published
        self._backoff = 0.0
        self.failing_since: float | None = None  # wall clock of the first error of a streak
        self._segments_opened = 0
        self._segments_sealed = 0
        self.last_error: str | None = None

    # -- writer thread -----------------------------------------------------------------------
    #
    # Accounting: every record taken from the queue is first "pending", then "done" (appended
    # to the file, failed to encode, or lost to a write error). Appended records stay
    # "unsynced" until the next fsync. Records that are done and not unsynced are settled,
    # which is what flush() waits for.

    def _run(self) -> None:
        try:
            while not self._loop():
                pass
        except BaseException as exc:  # interpreter exit: make it visible, never leave callers
            self.last_error = f"writer thread died: {type(exc).__name__}: {exc}"
            raise
        finally:
            with self._lock:
                self._dead = True
                self._settled_cv.notify_all()
                self._not_full.notify_all()

    def _loop(self) -> bool:
        """Write until closed (True); False after an unexpected error, to be called again."""
        while True:
            with self._lock:
                while not (self._buffer or self._closing or self._flush_requested):
                    timeout = self._wait_timeout()
                    if timeout is not None and timeout <= 0:
                        break
                    self._idle = True
                    self._work.wait(timeout)
                    self._idle = False
                self._linger()
                batch, self._buffer = self._buffer, []
                if batch:
                    self._not_full.notify_all()
                closing = self._closing
                force = closing or self._flush_requested
                self._flush_requested = False
            base = self._taken + 1
            self._taken += len(batch)
            try:
                step = self._fsync_every_records
                for start in range(0, len(batch), step):
                    self._write(batch[start : start + step], base + start)
                    self._sync(force=False)
                self._sync(force=force)
                if closing:
                    self._seal()
                else:
                    self._rotate_if_old()
            except Exception as exc:  # OSError: disk full, I/O error; anything else: a bug
                self._fail(exc)
                self._publish()  # tell waiters at once, then back off
                time.sleep(self._backoff)
                if not isinstance(exc, OSError):
                    return closing
                if closing:
                    return True
                continue
            self._publish()
            if closing:
                return True

    def _fail(self, exc: Exception) -> None:
        """Count what a write error costs, drop the segment, back off, carry on in a new one."""
        self._write_errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        if self.failing_since is None:
            self.failing_since = time.time()
        self._lost += self._unsynced + (self._taken - self._done)
        self._done = self._taken
        self._unsynced = 0
        self._failed_pending.append((self._synced_ordinal + 1, self._taken))
        self._synced_ordinal = self._written_ordinal = self._taken
        with contextlib.suppress(Exception):
            self._abandon_segment()
        # A full or failing disk should not turn into a hot loop: back off, up to 5 s.
        self._backoff = min(max(0.05, self._backoff * 2), 5.0)

    def _publish(self) -> None:
        if not self._unsynced:
            self._synced_ordinal = self._written_ordinal
        with self._lock:
            self._durable_seq = self._synced_seq
            self._settled = self._done - self._unsynced
            for first, last in sorted(self._failed_pending):
                self._ledger.fail(first, last)
            self._failed_pending.clear()
            self._ledger.settle(self._synced_ordinal)
            self._settled_cv.notify_all()

    def _write(self, records: list[FeatureLogRecord], base: int) -> None:
        payloads, failures = encode_batches(records, self._schema)
        if failures:
            index = {id(record): i for i, record in enumerate(records)}
            for record, exc in failures:
                self._encode_errors += 1
                self._done += 1
                ordinal = base + index.get(id(record), 0)
                self._failed_pending.append((ordinal, ordinal))
                request_id = getattr(record, "request_id", "?")
                self.last_error = (f"record {request_id!r} not logged: "
                                   f"{type(exc).__name__}: {exc}")
        for count, payload in payloads:
            data = _pack_header(BATCH, len(payload), _crc32(payload)) + payload
            segment = self._segment
            if segment is None:
                segment = self._open_segment()
            elif segment.count and segment.size + len(data) > self._segment_max_bytes:
                self._seal()
                segment = self._open_segment()
            self._append(segment, data, count)
        self._written_ordinal = base + len(records) - 1

    def _append(self, segment: OpenSegment, data: bytes, count: int) -> None:
        # Reserve the sequence numbers first: if the write fails half-way, a frame that did
        # reach the file keeps numbers no later segment reuses.
        segment.count += count
        self._next_seq += count
        view = memoryview(data)
        while view:
            view = view[_os_write(segment.fd, view) :]
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
            _os_fsync(self._segment.fd)
            self._fsyncs += 1
            self._backoff = 0.0
            self.failing_since = None
        self._synced_ordinal = self._written_ordinal
        self._unsynced = 0
        self._synced_seq = self._next_seq - 1
        self._publish()

    def _linger(self) -> None:
        """With the lock held: before writing a small batch nobody waits for, wait up to half of
        ``fsync_every_ms`` for more records. Encoding a batch has a fixed cost (about 0.7 ms
        for one record, 1.3 ms for a hundred), so one frame per request would take the serving
        threads' CPU and GIL; a flush, a close or a full batch ends the wait at once."""
        if not self._buffer or self._closing or self._flush_requested:
            return
        deadline = time.monotonic() + self._fsync_every_s / 2
        due = self._wait_timeout()
        if due is not None:
            deadline = min(deadline, time.monotonic() + due)
        self._lingering = True
        try:
            while len(self._buffer) < self._batch_records and not (
                    self._closing or self._flush_requested):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._work.wait(remaining)
        finally:
            self._lingering = False

    def _wait_timeout(self) -> float | None:
        now = time.monotonic()
        deadlines = []
        if self._unsynced:
            deadlines.append(self._unsynced_since + self._fsync_every_s - now)
        if self._segment is not None:
            deadlines.append(self._segment.opened_at + self._segment_max_age_s - now)
        return min(deadlines) if deadlines else None

    def _open_segment(self) -> OpenSegment:
        segment = self._segment = create_segment(self.root, self._next_seq)
        self._segments_opened += 1  # from here on a failure abandons it properly
        start_segment(segment, _os_write)
        return segment

    def _seal(self) -> None:
        segment = self._segment
        if segment is None:
            return
        _os_write(segment.fd, seal_frame(segment.first_seq, segment.count))
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
        segment, self._segment = self._segment, None
        if segment is not None and not abandon_segment(segment):
            self._next_seq += 1  # its name could not be freed: the next segment moves on
