"""Sync from the archive to the fact log: incremental with a watermark, exactly once even when
the process is killed mid-way, and a training set built from the synced fact log equals the
one built through the archive's batch interface."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

import parity as pt
from parity.archive import Archive, open_archive, sync, training_set, watermark
from parity.definitions import FACT_ID, RECORDED_AT
from parity.engines.duckdb import DuckDBEngine
from parity.errors import StateError
from tests.conformance import (
    CONTEXT_COLUMNS,
    PLAY_COLUMNS,
    PROFILE_COLUMNS,
    assert_same,
    at,
    catalog,
    frame,
    play,
    plays,
    profile,
    profiles,
    ts,
)

ROOT = Path(__file__).resolve().parents[2]


def _versions(table: pa.Table) -> list[tuple]:
    return sorted(zip(table.column(FACT_ID).to_pylist(), table.column(RECORDED_AT).to_pylist()))


def _archived(archive: Archive, source: pt.Source) -> pa.Table:
    return pa.concat_tables(list(archive.scan(source)))


def test_sync_is_incremental(archive: Archive, tmp_path: Path) -> None:
    log = pt.FactLog(tmp_path / "facts")
    archive.append(plays, frame([play(1, h) for h in (1, 2, 3)], PLAY_COLUMNS))
    first = sync(archive, log, [plays], through=ts(2.5))
    assert (first[0].exported, first[0].appended) == (2, 2)
    assert watermark(archive, plays, log) == ts(2.5)
    with pytest.raises(StateError, match="seal"):  # synced history cannot change any more
        archive.append(plays, frame([play(1, 2.2, title="late")], PLAY_COLUMNS))
    archive.append(plays, frame([play(1, 2.2, title="late", late=1)], PLAY_COLUMNS))
    second = sync(archive, log, through=ts(10))
    assert {r.source: r.appended for r in second} == {"plays": 2, "profiles": 0}
    assert sync(archive, log, through=ts(10))[0].appended == 0
    assert _versions(log.read(plays)) == _versions(_archived(archive, plays))
    assert not list((log.root / "_archive_sync").glob("*.parquet"))


_CHILD = """
import os, signal, sys
from tests.conformance import plays
from parity import FactLog
from parity.archive import open_archive, sync
url, root, stop = sys.argv[1:4]
def kill(source, step):
    if step == stop:
        os.kill(os.getpid(), signal.SIGKILL)
with open_archive(url, [plays]) as archive:
    sync(archive, FactLog(root), [plays], on_step=kill)
"""


@pytest.mark.parametrize("stop", ["exported", "appended"])
def test_killed_sync_resumes_without_loss_or_duplicates(
    archive_url: str, tmp_path: Path, stop: str
) -> None:
    log = pt.FactLog(tmp_path / "facts")
    with open_archive(archive_url, [plays]) as archive:
        rows = [play(m, h, title=f"{m}-{h}") for m in (1, 2) for h in (1, 2, 3, 4)]
        archive.append(plays, frame(rows, PLAY_COLUMNS))
        archive.append(
            plays, frame([play(1, 1, title="fix", late=2, fact_id="p-1-1-1-1")], PLAY_COLUMNS)
        )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, archive_url, str(log.root), stop],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == -9, child.stderr  # killed by SIGKILL at the step
    with open_archive(archive_url, [plays]) as archive:
        assert watermark(archive, plays, log) is None  # the kill came before the watermark
        if stop == "appended":
            assert log.read(plays).num_rows == 9  # appended, not yet acknowledged
        report = sync(archive, log, [plays])[0]
        assert report.exported == 9
        assert report.appended == (0 if stop == "appended" else 9)
        assert _versions(log.read(plays)) == _versions(_archived(archive, plays))
        assert log.read(plays).num_rows == 9
        assert watermark(archive, plays, log) is not None


def test_training_set_from_synced_log_equals_batch_interface(
    archive: Archive, tmp_path: Path
) -> None:
    fs = catalog()
    archive.append(
        plays,
        frame(
            [
                play(1, 1, minutes=2.5, title="a"),
                play(1, 2, minutes=0.1, title="b", late=6),  # late
                play(1, 3, minutes=0.2, title="c", fact_id="c"),
                play(1, 3, minutes=0.3, title="d", fact_id="b"),  # tie on both times
                play(2, 4, minutes=7.0, title="e", fact_id="e"),
            ],
            PLAY_COLUMNS,
        ),
    )
    archive.append(
        plays,
        frame(
            [  # corrections, one moving a fact to member 2
                play(1, 3, minutes=9.75, title="C", late=4, fact_id="c"),
                {**play(2, 3, title="d", late=5, fact_id="b")},
            ],
            PLAY_COLUMNS,
        ),
    )
    archive.delete(plays, ["e"], recorded_at=ts(9))
    archive.append(
        profiles, frame([profile(1, 0.5, "GB"), profile(1, 2, "FR", late=3)], PROFILE_COLUMNS)
    )
    ctx = frame(
        [at(m, h) for m in (1, 2, 3) for h in (1, 2.5, 3.5, 5, 7.5, 8.5, 10, 30)], CONTEXT_COLUMNS
    )
    ctx["at"] = ctx["at"].dt.tz_convert("America/New_York")  # any zone, same moments
    log = pt.FactLog(tmp_path / "facts")
    sync(archive, log)
    engine = DuckDBEngine(memory_limit="1GB", threads=1)
    from_log = engine.training_set(ctx, [fs], log)
    from_archive = training_set(archive, [fs], ctx)
    assert from_archive.column_names == from_log.column_names
    assert_same(from_log, from_archive, from_log.column_names)
    for cutoff in (ts(4.5), ts(8.75)):
        assert_same(
            engine.training_set(ctx, [fs], log, knowledge_cutoff=cutoff),
            training_set(archive, [fs], ctx, knowledge_cutoff=cutoff),
            from_log.column_names,
        )
    assert pd.Series(from_archive.column("plays_all").to_pylist()).max() > 0
