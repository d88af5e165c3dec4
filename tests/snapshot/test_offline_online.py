"""Snapshots offline (the time rules, a feature invented afterwards) and the live source online."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pytest

import parity as pt
from parity import listagg
from parity.featurelog.columns import records_table, table_records
from parity.featurelog.record import FeatureLogRecord
from parity.timeutil import us_to_datetime
from tests.snapshot.service import LiveService, answer
from tests.snapshot.workspace import make_workspace, snapshot


def now() -> datetime:
    return datetime.now(timezone.utc)


def test_a_snapshot_taken_at_t_is_visible_only_after_t(workspace: pt.Workspace) -> None:
    contexts = snapshot(workspace)
    taken = [at - timedelta(microseconds=1) for at in contexts.column("at").to_pylist()]
    keys = contexts.column("customer_id").to_pylist()
    probe = pa.table({
        "customer_id": keys * 2,
        "at": pa.array(taken + [t + timedelta(microseconds=1) for t in taken],
                       pa.timestamp("us", tz="UTC")),
    })
    table = workspace.training_set(probe, "rec_features")
    n = len(keys)
    assert table.column("top_item").to_pylist()[:n] == [None] * n  # at == snapshot time
    assert table.column("top_item").to_pylist()[n:] == [answer(k)["top_item"] for k in keys]


def test_a_later_snapshot_replaces_an_earlier_one_from_its_own_moment(
    workspace: pt.Workspace, service: LiveService
) -> None:
    first = snapshot(workspace, 1)
    service.faults.generation = 1  # the service's answer changes
    second = snapshot(workspace, 1)
    facts = workspace.fact_log.read(workspace.definitions.source("recs"))
    assert facts.num_rows == 2
    between = first.column("at")[0].as_py()
    probe = pa.table({"customer_id": [1, 1], "at": pa.array(
        [between, second.column("at")[0].as_py()], pa.timestamp("us", tz="UTC"))})
    table = workspace.training_set(probe, "rec_features")
    assert table.column("score").to_pylist() == [answer(1)["score"], answer(1, 1)["score"]]


def test_a_feature_invented_after_the_snapshots_trains_on_them_without_new_calls(
    workspace: pt.Workspace, service: LiveService
) -> None:
    contexts = snapshot(workspace)
    calls = sum(service.calls.values())
    recs = workspace.definitions.source("recs")
    customer = workspace.definitions.entities["customer"]
    items = pt.Lookup("items", recs, "items")

    @pt.transform(dtype="int")
    def top_is_first(top_item: str | None, items: list[dict[str, object]] | None) -> int | None:
        if top_item is None or not items:
            return None
        return int(items[0]["item"] == top_item)

    invented = pt.FeatureSet("invented_later", customer, [
        pt.Lookup("top_item", recs, "top_item"), items,
        listagg.transform("mean_item_score", "mean", of=items, field="score"),
        listagg.transform("n_items", "count", of=items),
        top_is_first,
    ])
    table = workspace.training_set(contexts, [invented])
    assert sum(service.calls.values()) == calls  # no new snapshot, no deploy
    for row in table.to_pylist():
        expected = answer(row["customer_id"])["items"]
        assert row["n_items"] == 2
        assert math.isclose(row["mean_item_score"], math.fsum(i["score"] for i in expected) / 2)
        assert row["top_is_first"] == 1


def test_online_calls_the_service_and_agrees_with_the_snapshot_path(
    workspace: pt.Workspace, service: LiveService
) -> None:
    contexts = snapshot(workspace, 3)
    offline = workspace.training_set(contexts, "rec_features")
    online = workspace.online
    online.materialize()
    calls = sum(service.calls.values())
    answer_now = online.answer("rec_features", [{"customer_id": k, "at": now()} for k in (1, 2, 3)])
    assert sum(service.calls.values()) == calls + 3  # called at request time
    for name in ("top_item", "score", "items"):
        assert answer_now.table.column(name).to_pylist() == offline.column(name).to_pylist()
    assert [row["recs"]["used"] for row in answer_now.live] == ["live"] * 3
    single = online.get_features("rec_features", {"customer_id": 2})
    assert single["top_item"] == "i2"


@pytest.mark.parametrize("fallback", ["snapshot", "none"])
def test_a_timed_out_call_falls_back_and_says_so(
    tmp_path: Path, service: LiveService, fallback: str
) -> None:
    ws = make_workspace(tmp_path / "ws", service.url, timeout="100ms", fallback=fallback)
    snapshot(ws, 2)
    ws.online.materialize()
    service.faults.delay_s[1] = 0.5
    service.faults.statuses[2] = [503]
    got = ws.online.answer("rec_features", [{"customer_id": 1, "at": now()},
                                            {"customer_id": 2, "at": now()}])
    used = [row["recs"]["used"] for row in got.live]
    if fallback == "snapshot":  # the stored snapshot, exactly
        assert used == ["fallback_snapshot"] * 2
        assert got.table.column("top_item").to_pylist() == ["i1", "i2"]
    else:  # no made-up value: null features
        assert used == ["fallback_none"] * 2
        assert got.table.column("top_item").to_pylist() == [None, None]
        assert got.table.column("items").to_pylist() == [None, None]
    # customer 1 timed out, customer 2 got a 503: the log says which, not just "fallback"
    assert "within 0.1s" in got.live[0]["recs"]["detail"]
    assert "503" in got.live[1]["recs"]["detail"]
    record = FeatureLogRecord(
        request_id="r1", logged_at=us_to_datetime(0), model="m", model_version=1,
        feature_set_versions={}, keys={"customer_id": 1}, features={"top_item": None},
        live=got.live[0],
    )
    (back,) = table_records(records_table([record]))
    assert back.live == got.live[0]  # the feature log keeps what was served
