"""Crash test: SIGKILL a writing process; everything reported durable must survive intact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from parity.featurelog import FeatureLogWriter, ReadReport, compact, read_log, read_segments
from parity.featurelog.segments import (
    BATCH,
    FILE_HEADER,
    HEADER,
    is_sealed,
    list_segments,
    segment_name,
)
from tests.featurelog.helpers import make_record

REPO = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("crash_writer.py")
TORN = HEADER.pack(BATCH, 4000, 0) + b"\x09\x00\x00\x00ARROW1"  # a frame cut short


def run_and_kill(root: Path, min_durable: int) -> int:
    """Start the child, SIGKILL it once it reported ``min_durable``; return the last report."""
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(root), str(REPO)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert child.stdout is not None
    deadline = time.monotonic() + 30
    last = 0
    try:
        while last < min_durable:
            line = child.stdout.readline()
            if not line:
                pytest.fail(f"crash child exited early: {child.stderr.read() if child.stderr else ''}")
            last = int(line)
            assert time.monotonic() < deadline, "child too slow"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        rest, _ = child.communicate(timeout=10)
    reported = [last, *(int(x) for x in rest.split())]
    assert reported == sorted(reported), "durable_seq must be monotonic"
    assert child.returncode == -signal.SIGKILL
    return reported[-1]


def test_sigkill_loses_nothing_durable_and_log_reopens(tmp_path: Path) -> None:
    durable = run_and_kill(tmp_path, min_durable=3000)

    # A torn write at the end of the log, as a power cut mid-append would leave it.
    newest = list_segments(tmp_path)[-1]
    if is_sealed(newest.path):
        # Killed between sealing a segment and creating the next one: tear the first write
        # of a fresh segment instead.
        last_seq = sum(1 for _ in read_segments(tmp_path))
        torn_path = tmp_path / segment_name(last_seq + 1)
        torn_path.write_bytes(FILE_HEADER + TORN)
    else:
        torn_path = newest.path
        with open(torn_path, "ab") as f:
            f.write(TORN)

    report = ReadReport()
    records = list(read_segments(tmp_path, report))
    assert report.torn_segments == 1
    assert report.torn_bytes >= len(TORN)
    assert report.torn_files == [str(torn_path)]
    seqs = [r.seq for r in records]
    assert seqs == list(range(1, len(records) + 1)), "no gaps, no duplicates"
    assert len(records) >= durable
    for record in records:
        assert record == make_record(record.seq or 0), f"record {record.seq} damaged"

    # Reopening repairs the torn segment and appends in a new one, continuing the numbers.
    writer = FeatureLogWriter(tmp_path)
    assert writer.recovery.segments_sealed + writer.recovery.segments_removed == 1
    assert writer.recovery.torn_bytes == report.torn_bytes
    next_seq = writer.recovery.next_seq
    assert next_seq == len(records) + 1
    for i in range(next_seq, next_seq + 50):
        writer.log(make_record(i))
    writer.close()
    newest = list_segments(tmp_path)[-1]
    assert newest.path.name == segment_name(next_seq)
    assert all(is_sealed(s.path) for s in list_segments(tmp_path))

    after = ReadReport()
    again = list(read_segments(tmp_path, after))
    assert after.torn_segments == 0
    assert [r.seq for r in again] == list(range(1, next_seq + 50))
    assert again[-1] == make_record(next_seq + 49)

    # And the repaired log compacts like any other.
    compact(tmp_path)
    assert list_segments(tmp_path) == []
    table = read_log(tmp_path)
    assert table.column("seq").to_pylist() == list(range(1, next_seq + 50))
