"""The archive's live interface on every backend: append (validated, idempotent, all or
nothing), latest and history with late facts, corrections, moves, tombstones and ties."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pytest

from parity.archive import Archive
from parity.errors import InputError, NotFoundError, SchemaError, TimeError
from tests.conformance import PLAY_COLUMNS, frame, play, plays, ts


def _append(archive: Archive, rows: list[dict]) -> int:
    return archive.append(plays, frame(rows, PLAY_COLUMNS)).stored


def _titles(table) -> list[str]:
    return table.column("title").to_pylist()


def test_append_is_idempotent_and_validated(archive: Archive) -> None:
    rows = [play(1, 1, title="a"), play(1, 2, title="b")]
    assert _append(archive, rows) == 2
    again = archive.append(plays, frame(rows, PLAY_COLUMNS))
    assert (again.stored, again.skipped) == (0, 2)
    with pytest.raises(TimeError):
        naive = frame(rows, PLAY_COLUMNS)
        naive["event_time"] = naive["event_time"].dt.tz_localize(None)
        archive.append(plays, naive)
    with pytest.raises(SchemaError, match="'colour'"):
        archive.append(plays, frame(rows, PLAY_COLUMNS).assign(colour="red"))
    with pytest.raises(NotFoundError, match="not archived"):
        archive.append("nope", frame(rows, PLAY_COLUMNS))


def test_a_conflicting_version_fails_the_whole_batch(archive: Archive) -> None:
    _append(archive, [play(1, 1, title="a", fact_id="x")])
    clash = play(1, 1, title="changed", fact_id="x")  # same fact_id and recorded_at
    with pytest.raises(SchemaError, match="later recorded_at"):
        _append(archive, [play(1, 5, title="new", fact_id="y"), clash])
    assert _titles(archive.latest(plays, 1, 10, at=ts(100))) == ["a"]  # "y" was not stored


def test_latest_orders_newest_first_with_ties(archive: Archive) -> None:
    _append(
        archive,
        [
            play(1, 1, title="a"),
            play(1, 3, title="c", fact_id="f2"),
            play(1, 3, title="d", fact_id="f1"),  # same event_time and recorded_at: fact id decides
            play(1, 3, title="e", late=1),  # same event_time, recorded later: newer
            play(2, 9, title="other"),
        ],
    )
    assert _titles(archive.latest(plays, 1, 3, at=ts(100))) == ["e", "c", "d"]
    assert _titles(archive.latest(plays, 1, 10, at=ts(100))) == ["e", "c", "d", "a"]
    # Strictly before: at 3h nothing of 3h is visible; at 3.5h the late one is not yet known.
    assert _titles(archive.latest(plays, 1, 10, at=ts(3))) == ["a"]
    assert _titles(archive.latest(plays, 1, 10, at=ts(3.5))) == ["c", "d", "a"]
    assert archive.latest(plays, 7, 5, at=ts(100)).num_rows == 0


def test_late_fact_and_correction_are_new_versions(archive: Archive) -> None:
    _append(archive, [play(1, 1, title="a", fact_id="x"), play(1, 2, title="b", late=10)])
    _append(archive, [play(1, 1, title="fixed", fact_id="x", late=5)])  # a correction at 6h
    assert _titles(archive.latest(plays, 1, 10, at=ts(5))) == ["a"]  # before both were known
    assert _titles(archive.latest(plays, 1, 10, at=ts(7))) == ["fixed"]
    assert _titles(archive.latest(plays, 1, 10, at=ts(20))) == ["b", "fixed"]
    # every version is kept
    versions = pd.concat(t.to_pandas() for t in archive.scan(plays))
    assert sorted(versions["title"]) == ["a", "b", "fixed"]


def test_correction_moving_a_fact_and_tombstones(archive: Archive) -> None:
    _append(archive, [play(1, 1, title="a", fact_id="x"), play(1, 2, title="b", fact_id="y")])
    _append(archive, [{**play(2, 1, title="a", fact_id="x"), "recorded_at": ts(4)}])  # moved
    archive.delete(plays, ["y"], recorded_at=ts(6))
    assert _titles(archive.latest(plays, 1, 10, at=ts(3))) == ["b", "a"]
    assert _titles(archive.latest(plays, 1, 10, at=ts(5))) == ["b"]
    assert _titles(archive.latest(plays, 2, 10, at=ts(5))) == ["a"]
    assert archive.latest(plays, 1, 10, at=ts(7)).num_rows == 0
    with pytest.raises(InputError, match="'nope'"):
        archive.delete(plays, ["nope"])


def test_history_range_oldest_first(archive: Archive) -> None:
    _append(archive, [play(1, h, title=str(h)) for h in (1, 2, 3, 4)])
    got = archive.history(plays, 1, since=ts(2), until=ts(4), at=ts(100))
    assert _titles(got) == ["2", "3"]
    assert _titles(archive.history(plays, 1, at=ts(100))) == ["1", "2", "3", "4"]
    assert _titles(archive.history(plays, 1, at=ts(3))) == ["1", "2"]  # nothing at/after at


def test_live_reads_default_to_now(archive: Archive) -> None:
    now = datetime.now().astimezone()
    archive.append(
        plays,
        frame([play(1, 0, title="now")], PLAY_COLUMNS).assign(
            event_time=pd.Timestamp(now - timedelta(seconds=5)), recorded_at=None
        ),
    )
    assert _titles(archive.latest(plays, 1)) == ["now"]  # recorded_at defaulted to "now"


def test_keys_are_checked(archive: Archive) -> None:
    with pytest.raises(InputError, match="'member_id'"):
        archive.latest(plays, "1")
    with pytest.raises(InputError, match="n:"):
        archive.latest(plays, 1, 0)
    assert archive.latest(plays, {"member_id": 1}).num_rows == 0


def test_threads_append_and_read_side_by_side(archive: Archive) -> None:
    """The live pool lends each thread its own connection; no append is lost or doubled."""
    from concurrent.futures import ThreadPoolExecutor

    def work(member: int) -> int:
        for hour in range(10):
            _append(archive, [play(member, hour, title=f"{member}-{hour}")])
            archive.latest(plays, member, 3, at=ts(100))
        return archive.latest(plays, member, 100, at=ts(100)).num_rows

    with ThreadPoolExecutor(4) as pool:
        counts = list(pool.map(work, range(1, 9)))
    assert counts == [10] * 8
    assert sum(t.num_rows for t in archive.scan(plays)) == 80
