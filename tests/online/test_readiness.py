"""Readiness and ``found`` (issue 8, item 1): the online path never answers zeros it cannot know.

The repro of the issue: facts ingested into the fact log, no ``materialize``, then a read. It
must refuse with NotReadyError naming ``parity materialize``, on every backend, for single,
batch and ``answer`` reads; after ``materialize`` it answers what the Time Machine says.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import parity as pt
from parity.errors import NotReadyError
from parity.online import OnlineAnswer, SourceReadiness, open_online
from tests.conformance import catalog, plays, profiles, ts

FS = catalog()
CTX = {"member_id": 1, "device": "tv"}


def history(log: pt.FactLog, *hours: float, member: int = 1) -> None:
    """Ingest one play per hour given (recorded when it happened: the source has no lag)."""
    log.ingest(
        plays,
        [
            {"member_id": member, "minutes": 15.0, "title": "a", "rating": 1, "event_time": ts(h)}
            for h in hours
        ],
    )


def test_ingest_without_materialize_is_refused_never_zeros(store_url: str, tmp_path: Path) -> None:
    log = pt.FactLog(tmp_path / "log")
    history(log, 1, 2)
    online = open_online(store_url, log, [FS])
    online.reset()
    context = {**CTX, "at": ts(3)}
    for read in (
        lambda: online.get_features(FS.name, context),
        lambda: online.get_features_batch(FS.name, [context]),
        lambda: online.answer(FS.name, [context]),
    ):
        with pytest.raises(NotReadyError, match=r"'plays'.*`parity materialize member_activity`"):
            read()
    state = online.readiness()["plays"]
    assert not state.materialized and not state.ready and state.watermark is None
    assert state.fact_log_latest == ts(2) and state.behind is None
    online.materialize()
    got = online.get_features(FS.name, context)
    assert got["plays_all"] == 2 and got["minutes_sum_all"] == 30.0
    assert online.readiness()["plays"] == SourceReadiness(
        "plays", True, ts(2), ts(2), timedelta(0), True
    )
    online.close()


def test_a_push_does_not_hide_missing_history(tmp_path: Path) -> None:
    log = pt.FactLog(tmp_path / "log")
    history(log, 1, 2)
    online = open_online("memory://", log, [FS])
    online.push("plays", [_play(hour=2.5)], now=ts(2.6))
    with pytest.raises(NotReadyError):  # the push is there, the two ingested plays are not
        online.get_features(FS.name, {**CTX, "at": ts(3)})
    online.materialize()  # flushes the push first, so nothing is lost
    assert online.get_features(FS.name, {**CTX, "at": ts(3)})["plays_all"] == 3


def test_sources_without_facts_need_no_materialize(store_url: str, tmp_path: Path) -> None:
    online = open_online(store_url, pt.FactLog(tmp_path / "log"), [FS])
    online.reset()
    assert online.get_features(FS.name, {**CTX, "at": ts(1)})["plays_all"] == 0  # true: no facts
    online.push("plays", [_play(hour=1)], now=ts(1.5))
    online.flush()  # the fact log now holds the push, and the store applied it
    state = online.readiness()
    assert state["plays"].ready and state["plays"].watermark == ts(1.5)
    assert state["profiles"] == SourceReadiness("profiles", True, None, None, timedelta(0), True)
    online.close()
    if store_url.startswith("memory"):
        return  # a memory store dies with its object: reopened, it holds nothing (not ready)
    again = open_online(store_url, pt.FactLog(tmp_path / "log"), [FS])
    assert again.readiness() == state
    assert again.get_features(FS.name, {**CTX, "at": ts(2)})["plays_all"] == 1
    again.close()


def test_reset_forgets_what_was_materialized(tmp_path: Path) -> None:
    log = pt.FactLog(tmp_path / "log")
    history(log, 1)
    online = open_online("memory://", log, [FS])
    online.materialize()
    online.get_features(FS.name, {**CTX, "at": ts(2)})
    online.reset()
    with pytest.raises(NotReadyError):
        online.get_features(FS.name, {**CTX, "at": ts(2)})


def test_materialized_by_another_process_is_noticed(sqlite_url: str, tmp_path: Path) -> None:
    log = pt.FactLog(tmp_path / "log")
    history(log, 1)
    server = open_online(sqlite_url, log, [FS])  # e.g. `parity serve`, started too early
    with pytest.raises(NotReadyError):
        server.get_features(FS.name, {**CTX, "at": ts(2)})
    cli = open_online(sqlite_url, log, [FS])  # `parity materialize` in another process
    cli.materialize()
    cli.close()
    assert server.get_features(FS.name, {**CTX, "at": ts(2)})["plays_all"] == 1
    server.close()


@pytest.mark.parametrize(("tolerance", "ready"), [(None, False), ("1h", True), ("10m", False)])
def test_a_store_behind_the_fact_log_is_reported_not_refused(
    tmp_path: Path, tolerance: str | None, ready: bool
) -> None:
    log = pt.FactLog(tmp_path / "log")
    history(log, 1)
    options: dict[str, Any] = {} if tolerance is None else {"tolerance": tolerance}
    online = open_online("memory://", log, [FS], **options)
    online.materialize()
    history(log, 1.5)  # ingested after the materialize: the store does not hold it
    state = online.readiness()["plays"]
    assert state.materialized and state.behind == timedelta(minutes=30)
    assert state.watermark == ts(1) and state.fact_log_latest == ts(1.5)
    assert state.ready is ready
    # Reported, not refused: the store answers what it holds.
    assert online.get_features(FS.name, {**CTX, "at": ts(2)})["plays_all"] == 1


def test_tolerance_from_the_url(tmp_path: Path) -> None:
    log = pt.FactLog(tmp_path / "log")
    history(log, 1)
    online = open_online("memory://?tolerance=1h", log, [FS])
    online.materialize()
    history(log, 1.5)
    assert online.readiness()["plays"].ready


def test_found_tells_never_seen_from_zero(store_url: str, tmp_path: Path) -> None:
    log = pt.FactLog(tmp_path / "log")
    history(log, 1, member=1)
    log.ingest(
        profiles,
        [{"member_id": 2, "country": "GB", "age": 3, "score": 1.0, "event_time": ts(1)}],
    )
    online = open_online(store_url, log, [FS])
    online.reset()
    online.materialize()
    contexts = [
        {"member_id": 1, "device": "tv", "at": ts(0.5)},  # seen, though nothing visible yet
        {"member_id": 2, "device": "tv", "at": ts(5)},  # seen in profiles only: zero plays
        {"member_id": 3, "device": "tv", "at": ts(5)},  # never seen
    ]
    got = online.answer(FS.name, contexts)
    assert isinstance(got, OnlineAnswer)
    assert got.found == [True, True, False]
    assert got.table.equals(online.get_features_batch(FS.name, contexts))
    assert got.table.column("plays_all").to_pylist() == [0, 0, 0]
    online.close()


def test_freshness_is_the_applied_watermark(tmp_path: Path) -> None:
    log = pt.FactLog(tmp_path / "log")
    history(log, 1, 2)
    online = open_online("memory://", log, [FS])
    assert online.freshness(["plays", "nope"]) == {"plays": None, "nope": None}
    online.materialize()
    assert online.freshness(["plays"]) == {"plays": ts(2)}


def _play(hour: float) -> dict[str, Any]:
    return {"member_id": 1, "minutes": 2.0, "title": "a", "rating": 1, "event_time": ts(hour)}


def test_reset_of_one_source_keeps_the_others(tmp_path: Path) -> None:
    log = pt.FactLog(tmp_path / "log")
    history(log, 1)
    log.ingest(
        profiles,
        [{"member_id": 1, "country": "GB", "age": 3, "score": 1.0, "event_time": ts(1)}],
    )
    online = open_online("memory://", log, [FS])
    online.materialize()
    online.reset("plays")
    state = online.readiness()
    assert not state["plays"].materialized and state["profiles"].ready
    assert online.store.read(profiles, ["[1]"])[0] and not online.store.read(plays, ["[1]"])[0]
