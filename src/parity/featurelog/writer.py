"""The feature log writer: a bounded queue in front of one background thread that appends.

``log()`` only takes a lock and appends to an in-memory queue; encoding, writing and fsync
happen on the writer thread, so the serving path never waits for the disk (it does share the
GIL with the writer thread). The thread takes everything queued, encodes it in chunks of up to
``fsync_every_records`` records as Arrow batches (one per record shape, see ``columns``),
appends each as one frame (see ``segments``) with one ``write``, and fsyncs in batches: after
``fsync_every_records`` records or ``fsync_every_ms`` after the first unsynced write, whichever
comes first. A small batch that nobody waits for (no flush, no close) is held up to half of
``fsync_every_ms`` for more records, because encoding one frame has a fixed cost that, paid
per request, would take the serving threads' CPU; a queued record is therefore durable within
about 1.5 x ``fsync_every_ms``. Segments rotate when the next frame would push them past
``segment_max_bytes`` (a single larger frame gets a segment of its own) or when they are older
than ``segment_max_age_s``; a rotated segment is sealed and never changes again.

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
One writer per folder: a second one raises LogLockedError. The writer thread's half lives in
``writer_thread``.
"""

from __future__ import annotations

import threading
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from parity.errors import LogLockedError, ParityError, WriterClosedError
from parity.featurelog.columns import LogSchema
from parity.featurelog.layout import worker_folder
from parity.featurelog.ledger import Ledger, Outcome, Receipt
from parity.featurelog.record import FeatureLogRecord
from parity.featurelog.sampling import KeySampler
from parity.featurelog.segment_file import check_config
from parity.featurelog.segments import RecoveryReport, lock_writer, recover, unlock_writer
from parity.featurelog.writer_thread import WriterThread

MiB = 1 << 20
OnFull = Literal["drop", "block"]


class FeatureLogWriter(WriterThread):
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
        self._lingering = False  # the writer waits for a fuller batch (see _linger)
        self._batch_records = min(fsync_every_records, queue_size)
        self._dead = False  # the writer thread stopped (interpreter exit); log() then drops
        self._ledger = Ledger()
        self._init_thread_state(self.recovery.next_seq)
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
            if self._idle or (self._lingering and (
                    flush or len(self._buffer) >= self._batch_records)):
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


def open_worker_writer(root: str | Path, *, max_workers: int = 1024,
                       **options: Any) -> tuple[int, FeatureLogWriter]:
    """``(index, writer)`` on the first worker folder of the log at ``root`` (``w0``, ``w1``,
    ...) that no live writer holds; ``options`` go to ``FeatureLogWriter``.

    For one log shared by several processes (``parity serve --workers N``): each process
    writes its own folder and readers merge them (see ``layout``). The writer lock dies with
    its process, so a worker restarted after a crash claims the folder its predecessor left,
    repairs it and continues its sequence numbers. LogLockedError when ``max_workers``
    folders are all held.
    """
    for index in range(max_workers):
        try:
            return index, FeatureLogWriter(worker_folder(root, index), **options)
        except LogLockedError:
            continue
    raise LogLockedError(
        f"feature log {root}: all {max_workers} worker folders (w0 to w{max_workers - 1}) "
        f"have a live writer; stop some writers or pass a larger max_workers"
    )
