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
``enqueue`` returns a ``Receipt`` with the record's ordinal, and ``wait_durable`` waits until
given ordinals are fsynced (or lost) and says which (see ``ledger``): serving uses it for
``feature_log: {sync: true}``. A write error (disk full, I/O error) is counted in
``write_errors``; the records not yet durable at that moment are counted in ``records_lost``,
the writer backs off (0.05 s doubling to 5 s) and continues in a fresh segment; ``failing``
stays set until a write and fsync succeed again. An unexpected error in the writer thread is
handled the same way, so the thread does not die. ``schema`` fixes the Arrow type of columns
(see ``columns.LogSchema``): a record that does not fit is refused, the log keeps its types.
One writer per folder: a second one raises LogLockedError.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Literal
from zlib import crc32 as _crc32

from parity.errors import ParityError, WriterClosedError
from parity.featurelog.columns import LogSchema, encode_batches
from parity.featurelog.ledger import Ledger, Outcome, Receipt
from parity.featurelog.record import FeatureLogRecord
from parity.featurelog.sampling import KeySampler
from parity.featurelog.segment_file import (
    OpenSegment,
    abandon_segment,
    check_config,
    create_segment,
    start_segment,
)
from parity.featurelog.segments import (
    BATCH,
    HEADER,
    RecoveryReport,
    lock_writer,
    recover,
    seal_frame,
    unlock_writer,
)

MiB = 1 << 20
# Module-level so that tests can inject faults (ENOSPC, EIO) into the writer alone.
_os_write = os.write
_os_fsync = os.fsync
OnFull = Literal["drop", "block"]
_pack_header = HEADER.pack


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
        schema: LogSchema | None = None,
    ) -> None:
        check_config(queue_size, on_full, fsync_every_ms, fsync_every_records,
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
        self._schema = schema
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
        self._dead = False  # the writer thread stopped (interpreter exit); log() then drops
        self._ledger = Ledger()
        # Owned by the writer thread; read without the lock by stats().
        self._next_seq = self.recovery.next_seq
        self._segment: OpenSegment | None = None
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
        self._written_ordinal = 0  # last ordinal handed to _write
        self._synced_ordinal = 0  # last ordinal settled (durable or failed)
        self._failed_pending: list[tuple[int, int]] = []  # failed intervals not yet published
        self._backoff = 0.0
        self.failing_since: float | None = None  # wall clock of the first error of a streak
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
        return self.enqueue(record).status == "queued"

    def enqueue(self, record: FeatureLogRecord, flush: bool = False) -> Receipt:
        """Queue ``record`` like ``log`` and say what happened; a queued record carries the
        ordinal to pass to ``wait_durable``. ``flush=True`` asks the writer to fsync as soon
        as it has written what is queued (a group commit) instead of waiting for the timer."""
        if not self._sample_all and not self._sampler(record.keys):
            with self._lock:
                self._sampled_out += 1
            return Receipt("sampled_out")
        with self._lock:
            if self._closing:
                raise self._closed_error()
            if self._dead:
                self._dropped += 1
                return Receipt("dropped")
            if len(self._buffer) >= self._queue_size:
                if self._on_full == "drop":
                    self._dropped += 1
                    return Receipt("dropped")
                while len(self._buffer) >= self._queue_size and not (self._closing or self._dead):
                    self._not_full.wait()
                if self._closing:
                    raise self._closed_error()
                if self._dead:
                    self._dropped += 1
                    return Receipt("dropped")
            self._buffer.append(record)
            self._accepted += 1
            if flush:
                self._flush_requested = True
            if self._idle:
                self._work.notify()
            return Receipt("queued", self._accepted)

    def wait_durable(self, ordinals: list[int], timeout: float | None = None) -> list[Outcome]:
        """Wait until every ordinal is settled (or ``timeout``); then each one's outcome:
        ``durable`` (fsynced), ``lost`` (a write error, or it could not be encoded),
        ``pending`` (timed out) or ``unknown`` (too old to tell)."""
        if not ordinals:
            return []
        target = max(ordinals)
        with self._lock:
            self._settled_cv.wait_for(
                lambda: self._ledger.settled >= target or self._dead, timeout
            )
            return [self._ledger.outcome(o) for o in ordinals]

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
            "failing": int(self.failing_since is not None),
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
