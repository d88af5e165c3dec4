"""One feature log written by several processes: a folder per worker, merged on read."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from parity.errors import LogLockedError
from parity.featurelog import (
    FeatureLogWriter,
    compact,
    open_worker_writer,
    read_log,
    read_segments,
    training_set_from_log,
)
from parity.featurelog.layout import worker_folder, worker_folders
from parity.featurelog.segments import is_sealed, list_segments
from tests.featurelog.helpers import T0, make_record

REPO = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("crash_writer.py")
PER_WRITER = 1500


def _write_as_worker(root: str, tag: str, start: Any, claimed: Any) -> None:
    """Child process: claim a worker folder, wait for the start signal, log PER_WRITER
    records whose ids carry ``tag`` (times shared with the other writer, to force ties)."""
    index, writer = open_worker_writer(root, on_full="block", fsync_every_records=100,
                                       segment_max_bytes=64 * 1024)
    claimed.put(index)
    start.wait(30)
    for i in range(PER_WRITER):
        record = make_record(i, at=T0 + timedelta(seconds=i // 3))
        writer.log(replace(record, request_id=f"{tag}-{i}"))
    writer.close()


def test_two_processes_write_concurrently_and_one_read_sees_each_record_once(
        tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    claimed = ctx.Queue()
    children = [ctx.Process(target=_write_as_worker, args=(str(tmp_path), tag, start, claimed))
                for tag in ("a", "b")]
    for child in children:
        child.start()
    indexes = sorted(claimed.get(timeout=60) for _ in children)
    start.set()
    for child in children:
        child.join(60)
        assert child.exitcode == 0
    assert indexes == [0, 1], "each process claims its own folder"
    assert [i for i, _ in worker_folders(tmp_path)] == [0, 1]

    expected = sorted(f"{tag}-{i}" for tag in "ab" for i in range(PER_WRITER))
    table = read_log(tmp_path)
    ids = table.column("request_id").to_pylist()
    assert sorted(ids) == expected, "every record exactly once"
    keys = list(zip(table.column("logged_at").to_pylist(), table.column("worker").to_pylist(),
                    table.column("seq").to_pylist()))
    assert keys == sorted(keys), "ordered by (logged_at, worker, seq)"
    assert len(set(zip(table.column("worker").to_pylist(),
                       table.column("seq").to_pylist()))) == 2 * PER_WRITER
    records = list(read_segments(tmp_path))
    assert [r.request_id for r in records] == ids, "read_segments merges in the same order"

    compact(tmp_path)
    assert all(not list(folder.glob("segment-*")) for _, folder in worker_folders(tmp_path))
    again = read_log(tmp_path)
    assert again.column("request_id").to_pylist() == ids


def test_old_single_folder_layout_reads_unchanged_and_merges_with_workers(
        tmp_path: Path) -> None:
    with FeatureLogWriter(tmp_path) as writer:
        for i in range(1, 4):
            writer.log(make_record(i))
    single = read_log(tmp_path)
    assert "worker" not in single.column_names
    assert single.column("seq").to_pylist() == [1, 2, 3]

    index, writer = open_worker_writer(tmp_path)
    with writer:
        writer.log(make_record(2))  # the same time as the root's record 2
    assert index == 0
    merged = read_log(tmp_path)
    assert merged.column("request_id").to_pylist() == ["r1", "r2", "r2", "r3"]
    assert merged.column("worker").to_pylist() == [None, None, 0, None]
    assert merged.column("seq").to_pylist() == [1, 2, 1, 3]
    assert [r.request_id for r in read_segments(tmp_path)] == ["r1", "r2", "r2", "r3"]


def test_worker_claims_the_first_free_folder(tmp_path: Path) -> None:
    first, a = open_worker_writer(tmp_path)
    second, b = open_worker_writer(tmp_path)
    assert (first, second) == (0, 1)
    a.close()
    third, c = open_worker_writer(tmp_path)
    assert third == 0, "a freed folder is taken again"
    with pytest.raises(LogLockedError, match="max_workers"):
        open_worker_writer(tmp_path, max_workers=2)
    b.close()
    c.close()


def test_merged_log_gives_a_training_set_in_log_order(tmp_path: Path) -> None:
    import pyarrow as pa

    for _ in range(2):
        index, writer = open_worker_writer(tmp_path)
        with writer:
            writer.log(make_record(1, member=7, at=T0))
            writer.log(make_record(2, member=7, at=T0))
        assert worker_folder(tmp_path, index).is_dir()
    labels = pa.table({"member": [7], "event_time": pa.array([T0 + timedelta(hours=1)],
                                                            pa.timestamp("us", tz="UTC"))})
    train = training_set_from_log(tmp_path, labels, keys=["member"], label_window="1d",
                                  now=T0 + timedelta(days=2))
    assert train.column("request_id").to_pylist() == ["r1", "r2", "r1", "r2"]
    assert train.column("label").to_pylist() == [1, 1, 1, 1]


def test_sigkilled_worker_folder_is_recovered_by_the_next_worker(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, str(CHILD), str(tmp_path), str(REPO), "worker"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout is not None
    durable = 0
    try:
        index = int(child.stdout.readline() or -1)
        deadline = time.monotonic() + 90
        while durable < 1000 and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            durable = int(line)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.communicate(timeout=10)
    assert index == 0 and durable >= 1000, "the child did not write"

    folder = worker_folder(tmp_path, 0)
    unsealed = [s for s in list_segments(folder) if not is_sealed(s.path)]
    claimed, writer = open_worker_writer(tmp_path)
    assert claimed == 0, "the restarted worker takes the dead one's folder"
    assert writer.recovery.segments_sealed + writer.recovery.segments_removed == len(unsealed)
    assert all(is_sealed(s.path) for s in list_segments(folder))
    next_seq = writer.recovery.next_seq
    assert next_seq > durable
    with writer:
        writer.log(make_record(next_seq))
    table = read_log(tmp_path)
    seqs = table.column("seq").to_pylist()
    assert sorted(seqs) == list(range(1, next_seq + 1)), "no gaps, no duplicates"
    assert set(table.column("worker").to_pylist()) == {0}
    by_seq = {r.seq: r for r in read_segments(tmp_path)}
    for seq in range(1, durable + 1):
        assert by_seq[seq] == make_record(seq), f"durable record {seq} lost or damaged"
