"""OnlineFeatures on every backend: push is visible at once and logged, bad facts are refused
whole, pushes are idempotent, errors are clear, SQLite survives a restart, eviction bounds
what an entity holds."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import parity as pt
from parity.errors import InputError, NotFoundError, SchemaError, TimeError, WorkspaceError
from parity.online import OnlineFeatures, open_online, open_store
from tests.conformance import PLAY_COLUMNS, catalog, frame, play, plays, profiles, ts

FS = catalog()
CTX = {"member_id": 1, "device": "tv"}


def online_at(url: str, root: Path, **options: Any) -> OnlineFeatures:
    online = open_online(url, pt.FactLog(root / "log"), [FS], **options)
    online.reset()
    return online


def raw_play(
    member: Any = 1, hour: float = 1.0, minutes: Any = 2.0, **extra: Any
) -> dict[str, Any]:
    return {
        "member_id": member,
        "minutes": minutes,
        "title": "a",
        "rating": 1,
        "event_time": ts(hour),
        **extra,
    }


def test_push_is_visible_to_the_next_request_and_logged(store_url: str, tmp_path: Path) -> None:
    online = online_at(store_url, tmp_path, flush_every=1_000_000, flush_seconds=3600)
    report = online.push("plays", [raw_play(hour=1), raw_play(hour=1.5)], now=ts(2))
    assert report.facts == 2 and report.entities == 1 and 0 < report.seconds < 1
    features = online.get_features(FS.name, {**CTX, "at": ts(2) + timedelta(microseconds=1)})
    assert features["plays_5h"] == 2 and features["minutes_sum_all"] == 4.0
    assert online.get_features(FS.name, {**CTX, "at": ts(2)})["plays_5h"] == 0  # recorded_at < t
    assert online.fact_log.read(plays).num_rows == 0  # buffered, not yet logged
    online.close()
    assert online.fact_log.read(plays).num_rows == 2


def test_flush_every_n_facts(tmp_path: Path) -> None:
    online = online_at("memory://", tmp_path, flush_every=3)
    online.push("plays", [raw_play(hour=1)], now=ts(2))
    assert online.fact_log.read(plays).num_rows == 0
    online.push("plays", [raw_play(hour=2), raw_play(hour=3)], now=ts(4))
    assert online.fact_log.read(plays).num_rows == 3


def test_same_fact_twice_counts_once(store_url: str, tmp_path: Path) -> None:
    online = online_at(store_url, tmp_path)
    fact = raw_play(hour=1, fact_id="abc")
    online.push("plays", [fact], now=ts(2))
    online.push("plays", [fact], now=ts(2))  # the very same version
    online.push("plays", [fact], now=ts(2.5))  # again, later: a correction that changes nothing
    online.push("plays", pd.DataFrame([raw_play(hour=1.5)]), now=ts(2.5))
    online.push("plays", pd.DataFrame([raw_play(hour=1.5)]), now=ts(2.6))  # same content hash
    got = online.get_features(FS.name, {**CTX, "at": ts(3)})
    assert got["plays_all"] == 2
    online.close()


@pytest.mark.parametrize(
    ("bad", "error", "words"),
    [
        ({"minutes": "lots"}, SchemaError, "minutes"),
        ({"member_id": None}, SchemaError, "member_id"),
        ({"event_time": datetime(2024, 3, 10, 1)}, TimeError, "time zone"),
        ({"rating": 1.5}, SchemaError, "rating"),
    ],
)
def test_a_bad_fact_rejects_the_whole_batch(
    store_url: str, tmp_path: Path, bad: dict[str, Any], error: type[Exception], words: str
) -> None:
    online = online_at(store_url, tmp_path)
    batch = [raw_play(hour=1), {**raw_play(hour=1.2), **bad}, raw_play(hour=1.4)]
    with pytest.raises(error, match=words):
        online.push("plays", batch, now=ts(2))
    assert online.get_features(FS.name, {**CTX, "at": ts(3)})["plays_all"] == 0
    online.close()
    assert online.fact_log.read(plays).num_rows == 0


def test_missing_key_column_is_refused(tmp_path: Path) -> None:
    online = online_at("memory://", tmp_path)
    facts = frame([play(1, 1)], PLAY_COLUMNS).drop(columns=["member_id"])
    with pytest.raises(SchemaError, match="member_id"):
        online.push("plays", facts)


def test_request_errors_name_the_field_and_the_fix(tmp_path: Path) -> None:
    online = online_at("memory://", tmp_path)
    with pytest.raises(NotFoundError, match="no feature set 'nope'.*member_activity"):
        online.get_features("nope", CTX)
    with pytest.raises(SchemaError, match=r"'member_id' is '1' \(str\).*int"):
        online.get_features(FS.name, {"member_id": "1", "device": "tv"})
    with pytest.raises(SchemaError, match="no 'member_id'"):
        online.get_features(FS.name, {"device": "tv"})
    with pytest.raises(SchemaError, match="request field 'device'"):
        online.get_features(FS.name, {"member_id": 1})
    with pytest.raises(TimeError, match="time zone"):
        online.get_features(FS.name, {**CTX, "at": datetime(2024, 3, 10)})
    with pytest.raises(NotFoundError, match="source 'nope'"):
        online.push("nope", [raw_play()])
    with pytest.raises(SchemaError, match="request field 'device'"):
        online.get_features_batch(FS.name, [{"member_id": 1, "at": ts(1)}])


def test_requests_before_the_horizon_are_refused(tmp_path: Path) -> None:
    online = online_at("memory://", tmp_path, lookback="1h")
    online.push("plays", [raw_play(hour=5)], now=ts(10))
    assert online.get_features(FS.name, {**CTX, "at": ts(9)})["plays_all"] == 0
    assert online.get_features(FS.name, {**CTX, "at": ts(10.5)})["plays_all"] == 1
    with pytest.raises(TimeError, match="before the online horizon"):
        online.get_features(FS.name, {**CTX, "at": ts(8.9)})


def test_request_at_defaults_to_now(tmp_path: Path) -> None:
    online = online_at("memory://", tmp_path)
    online.push("plays", [raw_play(hour=1)])
    assert online.get_features(FS.name, {"member_id": 1, "device": None})["plays_all"] == 1


def test_batch_matches_single_requests(store_url: str, tmp_path: Path) -> None:
    online = online_at(store_url, tmp_path)
    online.push("plays", [raw_play(m, h) for m in (1, 2) for h in (1, 2, 3)], now=ts(4))
    online.push(
        "profiles",
        [{"member_id": 2, "country": "FR", "age": 3, "score": 1.0, "event_time": ts(1)}],
        now=ts(4),
    )
    contexts = [{"member_id": m, "at": ts(h), "device": "web"} for m in (1, 2, 3) for h in (4, 5)]
    batch = online.get_features_batch(FS.name, contexts).to_pylist()
    for row, context in zip(batch, contexts):
        single = online.get_features(FS.name, context)
        assert {k: row[k] for k in single} == single
    online.close()


def test_delete_tombstones_from_its_time_on(store_url: str, tmp_path: Path) -> None:
    online = online_at(store_url, tmp_path)
    online.push("plays", [raw_play(hour=1, fact_id="x")], now=ts(2))
    online.delete("plays", ["x"], now=ts(3))
    assert online.get_features(FS.name, {**CTX, "at": ts(2.5)})["plays_all"] == 1
    assert online.get_features(FS.name, {**CTX, "at": ts(3.5)})["plays_all"] == 0
    with pytest.raises(NotFoundError, match="fact_id 'y'"):
        online.delete("plays", ["y"])
    online.close()
    assert online.fact_log.read(plays).column("_tombstone").to_pylist() == [False, True]


def test_materialize_rebuilds_from_the_fact_log(store_url: str, tmp_path: Path) -> None:
    log = pt.FactLog(tmp_path / "log")
    log.ingest(plays, frame([play(1, 1), play(1, 2), play(2, 3)], PLAY_COLUMNS))
    online = open_online(store_url, log, [FS])
    online.reset()
    online.push("plays", [raw_play(hour=2.5)], now=ts(4))  # buffered; materialize flushes it
    report = online.materialize()
    assert report.facts["plays"] == 4 and report.entities["plays"] == 2
    assert online.get_features(FS.name, {**CTX, "at": ts(5)})["plays_all"] == 3
    again = online.materialize([FS.name])  # idempotent
    assert again.facts == report.facts
    assert online.get_features(FS.name, {**CTX, "at": ts(5)})["plays_all"] == 3
    online.close()


def test_sqlite_survives_a_restart(sqlite_url: str, tmp_path: Path) -> None:
    first = online_at(sqlite_url, tmp_path)
    first.push("plays", [raw_play(hour=h) for h in (1, 2)], now=ts(3))
    first.push(
        "profiles",
        [{"member_id": 1, "country": "GB", "age": 3, "score": None, "event_time": ts(1)}],
        now=ts(3),
    )
    before = first.get_features(FS.name, {**CTX, "at": ts(3.5)})
    first.close()
    second = open_online(sqlite_url, pt.FactLog(tmp_path / "log"), [FS])
    assert second.watermark == first.watermark
    assert second.get_features(FS.name, {**CTX, "at": ts(3.5)}) == before
    assert before["plays_all"] == 2 and before["country"] == "GB"
    second.close()


def test_eviction_bounds_what_an_entity_holds(store_url: str, tmp_path: Path) -> None:
    # Windows reach back 24h at most (plus "all" features): use a catalog without them.
    windowed = pt.FeatureSet(
        "windowed",
        FS.entity,
        [
            pt.Aggregate("n_1h", plays, "count", window="1h"),
            pt.Aggregate("sum_5h", plays, "sum", "minutes", window="5h"),
            pt.Lookup("country", profiles, "country"),
            pt.Lookup("age", profiles, "age", ttl="2h"),
        ],
    )
    online = open_online(
        store_url, pt.FactLog(tmp_path / "log"), [windowed], lookback="1h", max_segments=4
    )
    online.reset()
    for step in range(200):  # one play and one profile version every 15 minutes
        hour = step / 4
        online.push("plays", [raw_play(hour=hour, minutes=1.0)], now=ts(hour))
        online.push(
            "profiles",
            [{"member_id": 1, "country": "GB", "age": step, "score": 1.0, "event_time": ts(hour)}],
            now=ts(hour),
        )
    online.compact()
    held = {s: sum(len(b) for b in online.store.read(s, ["[1]"])[0]) for s in (plays, profiles)}
    # 5h window + 1h lookback at 4 per hour, plus the one hour of lookback for state
    assert held[plays] <= 4 * 6 + 1
    assert held[profiles] <= 4 * 1 + 2
    got = online.get_features("windowed", {"member_id": 1, "at": ts(50)})
    assert got == {"n_1h": 4, "sum_5h": 20.0, "country": "GB", "age": 199}
    online.close()


def test_store_urls(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="unknown online store URL"):
        open_store("mongodb://x")
    with pytest.raises(WorkspaceError, match="absolute path"):
        open_store("sqlite://relative.db")
    assert open_store(f"sqlite:///{tmp_path}/x.db").url.endswith("x.db")


def test_redis_is_not_imported_by_the_core() -> None:
    import subprocess

    code = "import parity, parity.online, parity.skew, parity.cli.online, sys; print('redis' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_input_error_is_a_parity_error() -> None:
    assert issubclass(SchemaError, InputError)


def test_a_small_batch_is_deduplicated_without_pandas(tmp_path: Path) -> None:
    online = online_at("memory://", tmp_path)
    twice = raw_play(hour=1, fact_id="same")
    online.push("plays", [twice, dict(twice), raw_play(hour=1.5, fact_id="other")], now=ts(2))
    assert online.get_features(FS.name, {**CTX, "at": ts(3)})["plays_all"] == 2
    clash = raw_play(hour=1.2, fact_id="same", minutes=9.0)
    with pytest.raises(SchemaError, match="share fact_id 'same'"):
        online.push("plays", [raw_play(hour=1, fact_id="same"), clash], now=ts(2))
