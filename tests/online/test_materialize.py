"""Bulk materialize (issue 11): streamed in batches, written in bulk, and still exactly the Time
Machine's answer, also when an entity spans batches and a correction moved a fact between
entities."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import parity as pt
from parity.engines.duckdb import DuckDBEngine
from parity.online import bulk, open_online
from tests.conformance import PLAY_COLUMNS, assert_same, catalog, frame, plays, ts

FS = catalog()
NAMES = [f.name for f in FS.features]


def play(member: int, hour: float, fid: str, recorded: float | None = None) -> dict[str, Any]:
    return {
        "member_id": member,
        "minutes": hour,
        "title": f"t{int(hour) % 3}",
        "rating": 1,
        "event_time": ts(hour),
        "recorded_at": ts(recorded if recorded is not None else hour),
        "fact_id": fid,
    }


def facts() -> list[dict[str, Any]]:
    rows = [play(m, h, f"p{m}-{h}") for m in (1, 2, 3) for h in (1, 2, 3, 4, 5, 6)]
    rows.append(play(2, 2.5, "p1-3", recorded=7))  # p1-3 moves from member 1 to member 2
    rows.append(play(1, 6.5, "p3-4", recorded=8))  # p3-4 moves from member 3 to member 1
    rows.append(play(3, 9, "p3-1", recorded=9.5))  # a correction within one entity
    rows.append({**play(1, 4, "a-tie"), "title": "tie"})  # ties p1-4: the fact id decides
    rows.append({**play(2, 5, "zz-tie"), "title": "tie"})  # ties p2-5 (deleted later)
    # Member 4: no correction, so its block is trusted as stored in order (the fast path).
    rows += [play(4, h, f"p4-{h}") for h in (1, 2, 3)]
    rows += [{**play(4, 2, "a-tie4"), "title": "tie"}, {**play(4, 3, "z-tie4"), "title": "tie"}]
    return rows


@pytest.mark.parametrize("lookback", [None, "2h"])
def test_bulk_materialize_agrees_with_the_time_machine(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lookback: str | None
) -> None:
    monkeypatch.setattr(bulk, "BATCH_ROWS", 4)  # entities span batches
    log = pt.FactLog(tmp_path / "log")
    log.ingest(plays, frame(facts(), PLAY_COLUMNS))
    log.delete(plays, ["p2-5"], recorded_at=ts(10))
    online = open_online(store_url, log, [FS], lookback=lookback)
    online.reset()
    seen: list[tuple[str, int, int]] = []
    report = online.materialize(progress=lambda s, done, total: seen.append((s, done, total)))
    assert report.facts["plays"] == 29 and report.entities["plays"] == 4
    assert seen[-1] == ("plays", 29, 29) and len(seen) > 1
    start = 8 if lookback else 0  # the horizon is 10h - lookback
    contexts = [
        {"member_id": m, "device": "tv", "at": ts(start + h / 2)}
        for m in (1, 2, 3, 4, 5)
        for h in range(0, 24 if lookback is None else 8)
    ]
    expected = DuckDBEngine(memory_limit="1GB", threads=2).training_set(
        frame(contexts, ["member_id", "device", "at"]), [FS], log
    )
    actual = online.get_features_batch(FS.name, contexts)
    assert_same(expected, actual, NAMES)
    online.close()


def test_materialize_of_an_empty_fact_log(tmp_path: Path) -> None:
    online = open_online("memory://", pt.FactLog(tmp_path / "log"), [FS])
    report = online.materialize()
    assert report.facts == {"plays": 0, "profiles": 0}
    assert online.readiness()["plays"].ready
