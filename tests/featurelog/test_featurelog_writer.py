"""The writer: queue policies, durability counters, rotation, sampling, errors."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from parity.featurelog import (
    FeatureLogConfigError,
    FeatureLogRecord,
    FeatureLogWriter,
    LogLockedError,
    WriterClosedError,
    is_sampled,
    read_segments,
)
from parity.featurelog import writer_thread as writer_module
from parity.featurelog.segments import is_sealed, list_segments
from tests.featurelog.helpers import make_record


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)


@pytest.fixture
def stalled_encoder(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[threading.Event, threading.Event]]:
    """Make the writer thread stop inside its first encode until ``release`` is set."""
    entered, release = threading.Event(), threading.Event()
    real = writer_module.encode_batches

    def slow(records: list[FeatureLogRecord], schema: Any = None) -> Any:
        entered.set()
        release.wait(10)
        return real(records, schema)

    monkeypatch.setattr(writer_module, "encode_batches", slow)
    yield entered, release
    release.set()


def test_everything_logged_is_written_in_order(tmp_path: Path) -> None:
    with FeatureLogWriter(tmp_path) as writer:
        assert all(writer.log(make_record(i)) for i in range(1, 301))
    stats = writer.stats()
    assert stats["records_logged"] == stats["records_written"] == 300
    assert stats["durable_seq"] == 300
    assert stats["queue_depth"] == 0
    assert stats["bytes_written"] > 300 * 100
    assert [r.request_id for r in read_segments(tmp_path)] == [f"r{i}" for i in range(1, 301)]


def test_flush_makes_everything_durable(tmp_path: Path) -> None:
    writer = FeatureLogWriter(tmp_path, fsync_every_ms=60_000, fsync_every_records=10**6)
    try:
        for i in range(50):
            writer.log(make_record(i))
        assert writer.flush(timeout=5)
        assert writer.durable_seq == 50
        assert writer.stats()["fsyncs"] >= 1
    finally:
        writer.close()


def test_fsync_happens_on_its_own_within_the_interval(tmp_path: Path) -> None:
    with FeatureLogWriter(tmp_path, fsync_every_ms=20) as writer:
        writer.log(make_record(1))
        wait_until(lambda: writer.durable_seq == 1)


def test_drop_policy_drops_and_counts_when_queue_is_full(
    tmp_path: Path, stalled_encoder: tuple[threading.Event, threading.Event]
) -> None:
    entered, release = stalled_encoder
    writer = FeatureLogWriter(tmp_path, queue_size=5, on_full="drop")
    try:
        assert writer.log(make_record(0))
        assert entered.wait(5)  # the writer holds record 0 and is stuck
        results = [writer.log(make_record(i)) for i in range(1, 11)]
        assert results == [True] * 5 + [False] * 5
        stats = writer.stats()
        assert (stats["records_logged"], stats["records_dropped"], stats["queue_depth"]) == (6, 5, 5)
        release.set()
    finally:
        writer.close()
    assert writer.stats()["records_written"] == 6
    assert [r.request_id for r in read_segments(tmp_path)] == [f"r{i}" for i in range(6)]


def test_block_policy_waits_for_room_instead_of_dropping(
    tmp_path: Path, stalled_encoder: tuple[threading.Event, threading.Event]
) -> None:
    entered, release = stalled_encoder
    writer = FeatureLogWriter(tmp_path, queue_size=2, on_full="block")
    try:
        writer.log(make_record(0))
        assert entered.wait(5)
        writer.log(make_record(1))
        writer.log(make_record(2))
        outcome: list[bool] = []
        blocked = threading.Thread(target=lambda: outcome.append(writer.log(make_record(3))))
        blocked.start()
        blocked.join(0.3)
        assert blocked.is_alive(), "log() should wait while the queue is full"
        release.set()
        blocked.join(5)
        assert outcome == [True]
    finally:
        writer.close()
    assert writer.stats()["records_dropped"] == 0
    assert len(list(read_segments(tmp_path))) == 4


def test_close_wakes_blocked_callers_with_an_error(
    tmp_path: Path, stalled_encoder: tuple[threading.Event, threading.Event]
) -> None:
    entered, release = stalled_encoder
    writer = FeatureLogWriter(tmp_path, queue_size=1, on_full="block")
    writer.log(make_record(0))
    assert entered.wait(5)
    writer.log(make_record(1))
    errors: list[BaseException] = []

    def log_blocked() -> None:
        try:
            writer.log(make_record(2))
        except WriterClosedError as exc:
            errors.append(exc)

    blocked = threading.Thread(target=log_blocked)
    blocked.start()
    blocked.join(0.2)
    closer = threading.Thread(target=writer.close)
    closer.start()
    blocked.join(5)
    assert len(errors) == 1
    release.set()
    closer.join(5)
    assert len(list(read_segments(tmp_path))) == 2


def test_rotation_by_size_seals_segments_and_keeps_seq(tmp_path: Path) -> None:
    with FeatureLogWriter(tmp_path, segment_max_bytes=8192, fsync_every_records=5) as writer:
        for i in range(1, 201):
            writer.log(make_record(i))
    segments = list_segments(tmp_path)
    assert len(segments) > 5
    assert all(is_sealed(s.path) for s in segments)
    assert all(s.path.stat().st_size <= 8192 for s in segments)
    assert writer.stats()["segments_sealed"] == len(segments)
    records = list(read_segments(tmp_path))
    assert [r.seq for r in records] == list(range(1, 201))
    assert [r.request_id for r in records] == [f"r{i}" for i in range(1, 201)]


def test_rotation_by_age_seals_an_idle_segment(tmp_path: Path) -> None:
    with FeatureLogWriter(tmp_path, segment_max_age_s=0.05) as writer:
        writer.log(make_record(1))
        wait_until(lambda: writer.stats()["segments_sealed"] == 1)
        [segment] = list_segments(tmp_path)
        assert is_sealed(segment.path)
        writer.log(make_record(2))
        wait_until(lambda: writer.stats()["segments_opened"] == 2)
    assert [r.seq for r in read_segments(tmp_path)] == [1, 2]


def test_sampling_logs_whole_entities(tmp_path: Path) -> None:
    with FeatureLogWriter(tmp_path, sample_rate=0.5) as writer:
        kept = [writer.log(make_record(i, member=i % 40)) for i in range(200)]
    expected = [is_sampled({"member": i % 40}, 0.5) for i in range(200)]
    assert kept == expected
    assert 0 < sum(kept) < 200
    stats = writer.stats()
    assert stats["records_sampled_out"] == 200 - sum(kept)
    members = {r.keys["member"] for r in read_segments(tmp_path)}
    assert members == {m for m in range(40) if is_sampled({"member": m}, 0.5)}


def test_unencodable_record_is_counted_and_the_rest_written(tmp_path: Path) -> None:
    bad = make_record(2)
    bad.features["blob"] = object()  # type: ignore[assignment]
    with FeatureLogWriter(tmp_path) as writer:
        for record in (make_record(1), bad, make_record(3)):
            writer.log(record)
        assert writer.flush(timeout=5)
    assert writer.stats()["encode_errors"] == 1
    assert writer.last_error is not None and "r2" in writer.last_error
    assert [r.request_id for r in read_segments(tmp_path)] == ["r1", "r3"]


def test_one_writer_per_folder_and_reopen_continues_seq(tmp_path: Path) -> None:
    first = FeatureLogWriter(tmp_path)
    with pytest.raises(LogLockedError, match="already has a writer"):
        FeatureLogWriter(tmp_path)
    first.log(make_record(1))
    first.close()
    with FeatureLogWriter(tmp_path) as second:
        assert second.durable_seq == 1
        second.log(make_record(2))
    assert [r.seq for r in read_segments(tmp_path)] == [1, 2]
    assert len(list_segments(tmp_path)) == 2


def test_log_after_close_raises(tmp_path: Path) -> None:
    writer = FeatureLogWriter(tmp_path)
    writer.close()
    writer.close()  # idempotent
    with pytest.raises(WriterClosedError, match="closed"):
        writer.log(make_record(1))


@pytest.mark.parametrize(
    ("failing_call", "expected_ids"),
    [
        (1, ["r2"]),  # the directory fsync of a new segment fails: record 1 never reaches it
        (2, ["r1", "r2"]),  # the record fsync fails: r1 is in the file but was never durable
    ],
)
def test_write_error_counts_lost_records_and_writer_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing_call: int, expected_ids: list[str]
) -> None:
    real_fsync = writer_module.os.fsync
    calls = iter(range(1, 1000))

    def flaky_fsync(fd: int) -> None:
        if next(calls) == failing_call:
            raise OSError(5, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(writer_module.os, "fsync", flaky_fsync)  # the directory fsync
    monkeypatch.setattr(writer_module, "_os_fsync", flaky_fsync)  # the segment fsync
    with FeatureLogWriter(tmp_path, fsync_every_records=1) as writer:
        writer.log(make_record(1))
        wait_until(lambda: writer.stats()["write_errors"] == 1)
        writer.log(make_record(2))
        assert writer.flush(timeout=5)
    stats = writer.stats()
    assert stats["records_lost"] == 1
    assert "Input/output error" in (writer.last_error or "")
    records = list(read_segments(tmp_path))
    assert [r.request_id for r in records] == expected_ids
    assert stats["durable_seq"] == records[-1].seq
    # The abandoned segment is unsealed; the next writer seals it and nothing is lost.
    FeatureLogWriter(tmp_path).close()
    assert all(is_sealed(s.path) for s in list_segments(tmp_path))
    assert [r.request_id for r in read_segments(tmp_path)] == expected_ids


@pytest.mark.parametrize(
    ("option", "value"),
    [("queue_size", 0), ("on_full", "wait"), ("fsync_every_ms", 0), ("segment_max_bytes", 10)],
)
def test_bad_configuration_is_rejected(tmp_path: Path, option: str, value: object) -> None:
    with pytest.raises(FeatureLogConfigError, match=option):
        FeatureLogWriter(tmp_path, **{option: value})  # type: ignore[arg-type]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_the_writer_thread_survives_a_bug_counts_the_loss_and_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = writer_module._pack_header

    def broken(*_: object) -> bytes:
        raise RuntimeError("bug in the writer")

    monkeypatch.setattr(writer_module, "_pack_header", broken)
    writer = FeatureLogWriter(tmp_path, queue_size=1, on_full="block")
    receipt = writer.enqueue(make_record(1))
    assert writer.wait_durable([receipt.ordinal or 0], timeout=10) == ["lost"]
    assert "bug in the writer" in (writer.last_error or "")
    stats = writer.stats()
    assert stats["writer_alive"] == 1 and stats["write_errors"] >= 1
    assert stats["records_lost"] == 1 and stats["failing"] == 1
    monkeypatch.setattr(writer_module, "_pack_header", real)  # the fault goes away
    receipt = writer.enqueue(make_record(2), flush=True)
    assert writer.wait_durable([receipt.ordinal or 0], timeout=10) == ["durable"]
    assert writer.stats()["failing"] == 0
    writer.close()
    assert [r.request_id for r in read_segments(tmp_path)] == [make_record(2).request_id]


def test_many_producer_threads_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    def produce(start: int) -> None:
        for i in range(start, start + 1500):
            writer.log(make_record(i))

    with FeatureLogWriter(tmp_path, queue_size=64, on_full="block",
                          fsync_every_records=100) as writer:
        threads = [threading.Thread(target=produce, args=(k * 10_000,)) for k in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    records = list(read_segments(tmp_path))
    assert sorted(r.request_id for r in records) == sorted(
        f"r{k * 10_000 + i}" for k in range(4) for i in range(1500)
    )
    assert [r.seq for r in records] == list(range(1, 6001))
    for record in records[::97]:
        assert record == make_record(int(record.request_id[1:]))


def test_records_trickling_in_share_one_frame_and_a_flush_writes_at_once(tmp_path: Path) -> None:
    """One frame per request would cost the serving threads ~0.7 ms of encoding each: the
    writer waits up to half of fsync_every_ms for more records, unless someone waits."""
    from parity.featurelog.segments import read_segment

    writer = FeatureLogWriter(tmp_path, fsync_every_ms=2000)
    for i in range(1, 11):
        writer.log(make_record(i))
        time.sleep(0.005)  # requests arriving one by one, well inside the 1 s wait
    assert writer.flush(timeout=10)  # a flush ends the wait at once
    frames = [len(read_segment(s).counts) for s in list_segments(tmp_path)]
    assert sum(frames) == 1, f"10 trickling records were written as {sum(frames)} frames"
    receipt = writer.enqueue(make_record(11), flush=True)  # sync logging: no waiting
    assert receipt.ordinal is not None
    assert writer.wait_durable([receipt.ordinal], timeout=10) == ["durable"]
    writer.close()
    assert [r.seq for r in read_segments(tmp_path)] == list(range(1, 12))
