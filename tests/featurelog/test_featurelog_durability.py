"""Receipts and durability outcomes, a fixed schema no record can change, full-disk faults."""

from __future__ import annotations

import dataclasses
import errno
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import parity.featurelog.writer_thread as writer_module
from parity.featurelog import FeatureLogWriter, LogSchema, read_log, read_segments
from parity.featurelog.ledger import Ledger
from tests.featurelog.helpers import make_record

SCHEMA = LogSchema({"key.member": pa.int64(), "request.page": pa.int64()},
                   frozenset({"request.device"}))


def test_the_ledger_tells_durable_from_lost_and_pending() -> None:
    ledger = Ledger(keep=3)
    ledger.fail(3, 3)
    ledger.fail(5, 7)
    ledger.fail(4, 6)  # overlaps: merged
    ledger.settle(8)
    assert [ledger.outcome(o) for o in range(1, 10)] == [
        "durable", "durable", "lost", "lost", "lost", "lost", "lost", "durable", "pending"]
    for first in (10, 20, 30, 40):
        ledger.fail(first, first)
    ledger.settle(50)
    assert ledger.outcome(3) == "unknown"  # older than what the ledger keeps
    assert ledger.outcome(40) == "lost" and ledger.outcome(41) == "durable"


def test_receipts_wait_for_the_fsync(tmp_path: Path) -> None:
    with FeatureLogWriter(tmp_path, fsync_every_ms=60_000, fsync_every_records=10**6) as writer:
        receipts = [writer.enqueue(make_record(i), flush=(i == 9)) for i in range(10)]
        assert [r.status for r in receipts] == ["queued"] * 10
        ordinals = [r.ordinal or 0 for r in receipts]
        assert writer.wait_durable(ordinals, timeout=10) == ["durable"] * 10
        assert len(list(read_segments(tmp_path))) == 10


def test_a_fixed_schema_refuses_records_that_would_change_it(tmp_path: Path) -> None:
    good = make_record(1)
    huge = dataclasses.replace(make_record(2), keys={"member": 2**70})
    text = dataclasses.replace(make_record(3), keys={"member": "12348"})
    floaty = dataclasses.replace(make_record(4), keys={"member": 1.5})  # type: ignore[dict-item]
    mixed = dataclasses.replace(make_record(5), request={"device": 7, "page": 1})
    with FeatureLogWriter(tmp_path, schema=SCHEMA) as writer:
        receipts = [writer.enqueue(r, flush=True) for r in (good, huge, text, floaty, mixed)]
        outcomes = writer.wait_durable([r.ordinal or 0 for r in receipts], timeout=10)
        assert outcomes == ["durable", "lost", "lost", "lost", "durable"]
        assert writer.stats()["encode_errors"] == 3
    log = read_log(tmp_path)
    assert log.schema.field("key.member").type == pa.int64()
    assert log.schema.field("request.device").type == pa.string()  # JSON text, as declared
    assert log.column("request_id").to_pylist() == ["r1", "r5"]


def test_a_full_disk_is_counted_lost_and_the_writer_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = [True]
    real = writer_module._os_write

    def write(fd: int, data: Any) -> int:
        if full[0]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data)

    with FeatureLogWriter(tmp_path) as writer:
        monkeypatch.setattr(writer_module, "_os_write", write)
        lost = [writer.enqueue(make_record(i), flush=True) for i in range(5)]
        assert set(writer.wait_durable([r.ordinal or 0 for r in lost], timeout=10)) == {"lost"}
        stats = writer.stats()
        assert stats["records_lost"] == 5 and stats["write_errors"] >= 1
        assert stats["failing"] == 1 and stats["writer_alive"] == 1
        assert writer.failing_since is not None and "No space" in (writer.last_error or "")
        full[0] = False
        ok = writer.enqueue(make_record(99), flush=True)
        assert writer.wait_durable([ok.ordinal or 0], timeout=10) == ["durable"]
        assert writer.stats()["failing"] == 0
    assert [r.request_id for r in read_segments(tmp_path)] == ["r99"]
