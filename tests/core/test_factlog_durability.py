"""Power loss: the fact log makes data files and their folders durable before the manifest swap.

The order of syscalls is recorded by wrapping ``os.fsync`` and ``os.replace`` as the fact log
sees them; a file descriptor is resolved to its path through /proc/self/fd.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

import parity as pt
import parity.factlog as factlog

customer = pt.Entity("customer", {"customer_id": int})
purchases = pt.EventSource("purchases", customer, {"amount": float, "item": str})


def facts(days: int, start: str = "2024-01-01", first_key: int = 0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": range(first_key, first_key + days),
            "amount": 1.0,
            "item": "a",
            "event_time": pd.date_range(start, periods=days, freq="D", tz="UTC"),
        }
    )


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    if not Path("/proc/self/fd").exists():
        pytest.skip("needs /proc/self/fd to name the file behind a descriptor")
    recorded: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        recorded.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src: str | Path, dst: str | Path) -> None:
        recorded.append(("replace", str(Path(dst).resolve())))
        real_replace(src, dst)

    monkeypatch.setattr(factlog.os, "fsync", fsync)
    monkeypatch.setattr(factlog.os, "replace", replace)
    return recorded


def check_order(calls: list[tuple[str, str]], folder: Path, new_files: list[str]) -> None:
    manifest = str((folder / factlog.MANIFEST).resolve())
    swap = calls.index(("replace", manifest))
    before = calls[:swap]
    for relative in new_files:
        data = (folder / relative).resolve()
        assert ("fsync", str(data)) in before, f"{relative} not fsynced before the manifest swap"
        assert ("fsync", str(data.parent)) in before, f"{data.parent} not fsynced before the swap"
        assert before.index(("fsync", str(data))) < before.index(("fsync", str(data.parent)))
    after = calls[swap + 1 :]
    assert ("fsync", str(folder.resolve())) in after, "manifest folder not fsynced after the swap"


def test_first_append_syncs_files_folders_then_manifest(
    tmp_path: Path, calls: list[tuple[str, str]]
) -> None:
    log = pt.FactLog(tmp_path)
    log.ingest(purchases, facts(3))
    folder = tmp_path / "purchases"
    new_files = [entry.path for entry in log.files(purchases)]
    assert len(new_files) == 3
    check_order(calls, folder, new_files)
    # New partition folders are entries of the source folder: it is synced before the swap too.
    swap = calls.index(("replace", str((folder / factlog.MANIFEST).resolve())))
    assert ("fsync", str(folder.resolve())) in calls[:swap]
    # And the source folder itself is an entry of the log's root.
    assert ("fsync", str(tmp_path.resolve())) in calls[:swap]


def test_later_append_syncs_only_what_is_new_before_the_swap(
    tmp_path: Path, calls: list[tuple[str, str]]
) -> None:
    log = pt.FactLog(tmp_path)
    log.ingest(purchases, facts(2))
    known = {entry.path for entry in log.files(purchases)}
    calls.clear()
    log.ingest(purchases, facts(2, start="2024-01-02", first_key=100))
    new_files = [entry.path for entry in log.files(purchases) if entry.path not in known]
    assert len(new_files) == 2  # one into an existing partition, one into a new one
    check_order(calls, tmp_path / "purchases", new_files)
