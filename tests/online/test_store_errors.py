"""Driver errors mapped in one place (issue 10), and read-only opening for pure reads.

SQLite: a locked database is TransientError, a full disk StorageError; a store opened
read-only creates and changes nothing on disk and refuses writes with StorageError.
Redis: an unreachable server is TransientError.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

import parity as pt
from parity.errors import StorageError, TransientError
from parity.online import open_online, open_store
from parity.online.sqlite import SQLiteStore
from tests.conformance import catalog, plays, ts

FS = catalog()
PLAY = {"member_id": 1, "minutes": 2.0, "title": "a", "rating": 1, "event_time": ts(1)}


def snapshot(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Every file in ``folder`` with its inode, size and modification time."""
    out = {}
    for name in sorted(os.listdir(folder)):
        st = os.stat(folder / name)
        out[name] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return out


def test_read_only_sqlite_changes_nothing_on_disk(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store' / 'online.db'}"
    log = pt.FactLog(tmp_path / "log")
    writer = open_online(url, log, [FS])
    writer.push("plays", [PLAY], now=ts(1.5))
    writer.close()
    before = snapshot(tmp_path / "store")
    reader = open_online(url, log, [FS], read_only=True)
    assert (
        reader.get_features(FS.name, {"member_id": 1, "device": None, "at": ts(2)})["plays_all"]
        == 1
    )
    assert reader.readiness()["plays"].ready
    with pytest.raises(StorageError, match="read-only"):
        reader.push("plays", [PLAY], now=ts(3))
    with pytest.raises(StorageError, match="read-only"):
        reader.materialize()
    reader.close()
    assert snapshot(tmp_path / "store") == before  # no -wal, -shm or -journal, nothing touched


def test_read_only_of_a_missing_file_creates_nothing(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'none' / 'online.db'}", read_only=True)
    assert store.get_meta("watermark") is None and store.read(plays, ["[1]"]) == [[]]
    with pytest.raises(StorageError, match="read-only"):
        store.set_meta("watermark", "1")
    store.close()
    assert not (tmp_path / "none").exists()


def test_every_store_refuses_writes_when_read_only(store_url: str) -> None:
    store = open_store(store_url, read_only=True)
    with pytest.raises(StorageError, match="read-only"):
        store.set_meta("x", "1")
    assert store.get_meta("x") is None
    store.close()


def test_a_locked_sqlite_database_is_transient(tmp_path: Path) -> None:
    path = tmp_path / "online.db"
    store = SQLiteStore(path, busy_timeout=0.01)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        with pytest.raises(TransientError, match="busy"):
            store.set_meta("watermark", "1")
    finally:
        other.execute("ROLLBACK")
        other.close()
    store.set_meta("watermark", "1")  # the retry succeeds once the lock is gone
    assert store.get_meta("watermark") == "1"
    store.close()


def test_a_full_sqlite_disk_is_a_storage_error(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "online.db")
    store._con.execute("PRAGMA max_page_count = 8")  # the disk "fills" after 8 pages
    with pytest.raises(StorageError, match="disk"):
        for i in range(10_000):
            store.set_meta(f"key{i}", "x" * 500)
    store.close()


def test_an_unreachable_redis_is_transient() -> None:
    pytest.importorskip("redis")
    from parity.online.redis import RedisStore

    with pytest.raises(TransientError, match="did not answer"):
        RedisStore("redis://127.0.0.1:1/0")  # nothing listens on port 1
