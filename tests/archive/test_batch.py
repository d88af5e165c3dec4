"""The archive's batch interface on every backend: as_of equal to the reference evaluator's
visibility (hand-written and generated), retention refusals, the sync seal, snapshot reads,
isolation from live writes, the token bucket, and export."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parity import reference
from parity.archive import CONTEXT, Archive, TokenBucket, export, open_archive
from parity.definitions import FACT_ID, RECORDED_AT
from parity.errors import ConfigError, NotReadyError, SchemaError, StateError
from parity.timeutil import datetime_to_us
from tests.archive.backends import archive_url_for, drop_archive_schema
from tests.conformance import (
    PLAY_COLUMNS,
    catalog,
    contexts,
    frame,
    hypothesis_examples,
    play,
    play_facts,
    plays,
    ts,
)


def _append(archive: Archive, rows: list[dict]) -> None:
    archive.append(plays, frame(rows, PLAY_COLUMNS))


def _as_of_ids(archive: Archive, ctx: list[dict], cutoff=None) -> list[list[tuple[str, int]]]:
    """Per context, the (fact_id, recorded_at) of each version as_of returns, in its order."""
    got = archive.as_of(plays, pd.DataFrame(ctx), knowledge_cutoff=cutoff).to_pylist()
    out: list[list[tuple[str, int]]] = [[] for _ in ctx]
    for row in got:
        out[row[CONTEXT]].append((row[FACT_ID], datetime_to_us(row[RECORDED_AT])))
    return out


def _oracle_ids(archive: Archive, ctx: list[dict], cutoff=None) -> list[list[tuple[str, int]]]:
    """The same from the reference evaluator, over every stored version."""
    chunks = list(archive.scan(plays))
    facts = pa.concat_tables(chunks) if chunks else None
    index = reference.index_facts({"plays": facts} if facts else {}, [catalog()])["plays"]
    bound = datetime_to_us(cutoff) if cutoff else None
    out = []
    for row in ctx:
        seen = reference.visible(index, (row["member_id"],), datetime_to_us(row["at"]), bound)
        out.append([(f.fact_id, f.recorded_at) for f in sorted(seen, key=lambda f: f.order)])
    return out


def test_as_of_hand_cases(archive: Archive) -> None:
    _append(
        archive,
        [
            play(1, 1, title="a", fact_id="x"),
            play(1, 2, title="late", late=5, fact_id="late"),
            play(1, 3, title="t1", fact_id="t1"),
            play(1, 3, title="t0", fact_id="t0"),  # a tie: fact id orders it first
            play(2, 1, title="b", fact_id="y"),
        ],
    )
    _append(
        archive,
        [
            {**play(1, 1, title="fix", fact_id="x"), "recorded_at": ts(4)},  # correction at 4h
            {**play(2, 1, title="b", fact_id="y"), "member_id": 1, "recorded_at": ts(5)},  # moved
        ],
    )
    archive.delete(plays, ["t1"], recorded_at=ts(6))
    ctx = [
        {"member_id": m, "at": ts(h)}
        for m in (1, 2, 3)
        for h in (1, 1.5, 3, 3.5, 4, 4.5, 5, 6, 7, 8)
    ]
    assert _as_of_ids(archive, ctx) == _oracle_ids(archive, ctx)
    for cutoff in (ts(4), ts(5.5)):
        assert _as_of_ids(archive, ctx, cutoff) == _oracle_ids(archive, ctx, cutoff)
    # spot checks of the oracle itself
    answer = _as_of_ids(archive, [{"member_id": 1, "at": ts(3.5)}])[0]
    assert [i for i, _ in answer] == ["x", "t0", "t1"]  # "late" recorded at 7h is not known
    assert archive.as_of(plays, pd.DataFrame(ctx[:0], columns=["member_id", "at"])).num_rows == 0


def test_as_of_in_another_time_zone(archive: Archive) -> None:
    _append(archive, [play(1, 1, title="a")])
    paris = pd.DataFrame({"member_id": [1, 1], "at": [ts(1), ts(1.5)]})
    paris["at"] = paris["at"].dt.tz_convert("Europe/Paris")
    got = archive.as_of(plays, paris)
    assert got.column(CONTEXT).to_pylist() == [1]  # 1h is not strictly before 1h
    naive = paris.assign(at=paris["at"].dt.tz_localize(None))
    with pytest.raises(Exception, match="at"):
        archive.as_of(plays, naive)
    with pytest.raises(SchemaError, match="'member_id'"):
        archive.as_of(plays, paris.drop(columns=["member_id"]))


def test_as_of_property(archive_url: str, tmp_path: Path) -> None:
    runs = iter(range(10_000))

    @settings(
        max_examples=hypothesis_examples(15),
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def agrees(data: st.DataObject) -> None:
        rows = data.draw(play_facts([1, 2, 3]))
        ctx = data.draw(contexts([1, 2, 3]))
        cutoff = data.draw(st.one_of(st.none(), st.integers(0, 60).map(lambda h: ts(h + 0.25))))
        folder = tmp_path / f"run{next(runs)}"
        folder.mkdir()
        url = archive_url_for("postgres" if "postgres" in archive_url else "sqlite", folder)
        try:
            with open_archive(url, [plays], batch_rows=3) as archive:
                _append(archive, rows)
                assert _as_of_ids(archive, ctx, cutoff) == _oracle_ids(archive, ctx, cutoff)
        finally:
            drop_archive_schema(url)

    agrees()


def test_retention_refuses_what_it_dropped(archive_url: str) -> None:
    with open_archive(archive_url, [plays], retention={"plays": "10h"}) as archive:
        _append(archive, [play(1, h, title=str(h)) for h in (1, 5, 12, 20)])
        assert archive.apply_retention(now=ts(21)) == {"plays": 2}  # event_time < 11h
        assert archive.horizon(plays) == ts(11)
        assert archive.history(plays, 1, since=ts(11), at=ts(30)).num_rows == 2
        with pytest.raises(NotReadyError, match="dropped facts before"):
            archive.history(plays, 1, at=ts(30))
        ctx = pd.DataFrame({"member_id": [1], "at": [ts(30)]})
        with pytest.raises(NotReadyError, match="all history"):
            archive.as_of(plays, ctx)
        assert archive.as_of(plays, ctx, window="19h").num_rows == 2
        with pytest.raises(NotReadyError):
            archive.as_of(plays, ctx, window="20h")
    with open_archive(archive_url, [plays], retention={"plays": "10h"}) as archive:
        # A fact at 12h, corrected at 15h to have happened at 5h: after a purge at 11h, its
        # correction must still retire the 12h version.
        _append(archive, [play(2, 12, title="x", fact_id="moved")])
        _append(archive, [{**play(2, 5, title="x", fact_id="moved"), "recorded_at": ts(15)}])
        archive.apply_retention(now=ts(21))
        ctx = pd.DataFrame({"member_id": [2, 2], "at": [ts(14), ts(30)]})
        seen = archive.as_of(plays, ctx, window="3h").to_pylist()
        assert [(r[CONTEXT], r["event_time"]) for r in seen] == [(0, ts(12)), (1, ts(5))]
    with pytest.raises(ConfigError, match="'orders'"):
        open_archive(archive_url, [plays], retention={"orders": "1d"})


def test_seal_refuses_appends_before_it(archive: Archive) -> None:
    _append(archive, [play(1, 1)])
    archive.store.seal("plays", datetime_to_us(ts(10)))
    with pytest.raises(StateError, match="seal"):
        _append(archive, [play(1, 2, title="old")])
    _append(archive, [play(1, 2, title="learned late", late=9)])  # recorded at 11h: fine


def test_scan_is_one_snapshot(archive_url: str) -> None:
    with open_archive(archive_url, [plays], batch_rows=2) as archive:
        _append(archive, [play(1, h, title=str(h)) for h in range(6)])
        chunks = archive.scan(plays)
        first = next(chunks)
        # Live writes go on while the batch read holds its snapshot (own connection).
        _append(archive, [play(2, 0.5, title="during")])
        assert archive.latest(plays, 2, at=ts(100)).num_rows == 1
        rest = list(chunks)
        seen = sorted(pa.concat_tables([first, *rest]).column("title").to_pylist())
        assert seen == [str(h) for h in range(6)]  # the export does not see the new row
        later = pa.concat_tables(list(archive.scan(plays))).column("title").to_pylist()
        assert "during" in later


def test_budget_paces_batch_reads(archive_url: str) -> None:
    clock = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    bucket = TokenBucket(10, 10, clock=lambda: clock[0], sleep=sleep)
    with open_archive(archive_url, [plays], batch_rows=5) as archive:
        archive.budget = bucket
        _append(archive, [play(1, h) for h in range(30)])
        assert sum(t.num_rows for t in archive.scan(plays)) == 30
    # 30 rows at 10 rows/s with 10 saved up: 2 s of waiting, never a burst above 10.
    assert sum(slept) == pytest.approx(2.0)
    assert clock[0] == pytest.approx(2.0)


def test_token_bucket_refills_with_time() -> None:
    clock = [0.0]
    bucket = TokenBucket(100, 50, clock=lambda: clock[0], sleep=lambda s: None)
    assert bucket.take(50) == 0
    assert bucket.take(10) == pytest.approx(0.1)  # in debt by 10 tokens: 0.1 s
    clock[0] += 1.0  # a second later: refilled to the burst, minus the debt
    assert bucket.take(40) == 0
    with pytest.raises(ConfigError, match="rate"):
        TokenBucket(0)


def test_export_writes_every_version(archive: Archive, tmp_path: Path) -> None:
    _append(archive, [play(1, h, title=str(h)) for h in range(5)])
    _append(archive, [{**play(1, 1, title="fix"), "fact_id": "p-1-1-1", "recorded_at": ts(9)}])
    report = export(archive, plays, tmp_path / "out" / "plays.parquet", until=ts(8))
    table = pq.read_table(report.path)
    assert report.rows == table.num_rows == 5  # the correction recorded at 9h is outside
    whole = export(archive, plays, tmp_path / "all.parquet")
    assert whole.rows == 6
    assert not list((tmp_path / "out").glob(".*partial"))


def test_a_live_append_racing_a_seal_is_stamped_again(
    archive: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    import parity.facts

    real = parity.facts.now_us
    stamps = iter([real() - 60_000_000])  # the first stamp predates the seal below

    def clock() -> int:
        return next(stamps, None) or real()

    archive.store.seal("plays", real() - 1_000_000)
    monkeypatch.setattr(parity.facts, "now_us", clock)
    rows = frame([play(1, 1)], PLAY_COLUMNS).drop(columns=["recorded_at"])
    assert archive.append(plays, rows).stored == 1
    with pytest.raises(StateError, match="seal"):  # an explicit old recorded_at still fails
        _append(archive, [play(1, 2)])
