"""`parity sources`: list with counts and freshness, `reset` and `delete` with confirmation."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import parity as pt
from parity.cli import main
from parity.errors import NotReadyError

UTC = timezone.utc


def purchases() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": [1, 1, 2],
            "amount": [10.0, 5.0, 7.0],
            "item": ["a", "b", "a"],
            "event_time": pd.to_datetime(
                ["2024-01-01T10:00:00Z", "2024-01-20T10:00:00Z", "2024-01-21T10:00:00Z"], utc=True
            ),
        }
    )


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = pt.init(tmp_path / "proj")
    pt.open(root).ingest("purchases", purchases())
    return root


def run(ws: Path, *args: str, input: str | None = None):  # type: ignore[no-untyped-def]
    # A wide terminal so that rich does not shorten the table cells.
    return CliRunner(env={"COLUMNS": "220"}).invoke(main, ["-w", str(ws), *args], input=input)


def test_list_shows_counts_ranges_and_online_watermark(ws: Path) -> None:
    result = run(ws, "sources")
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if "purchases" in x)
    assert "3" in line and "2024-01-01 10:00:00" in line and "2024-01-21 10:00:00" in line
    assert "2024-01-21 11:00:00" in line  # latest recorded_at: event_time + lag 1h
    assert "not materialized" in line
    profiles = next(x for x in result.output.splitlines() if "profiles" in x)
    assert "state" in profiles
    workspace = pt.open(ws)
    workspace.online.materialize()
    workspace.online.close()
    line = next(x for x in run(ws, "sources").output.splitlines() if "purchases" in x)
    assert "not materialized" not in line and line.count("2024-01-21 11:00:00") == 2


def test_list_writes_nothing_to_the_online_store(ws: Path) -> None:
    assert run(ws, "sources").exit_code == 0
    assert not (ws / "data" / "online.db").exists()


def test_reset_asks_then_removes_facts_and_online_state(ws: Path) -> None:
    workspace = pt.open(ws)
    workspace.ingest(
        "profiles",
        pd.DataFrame({"customer_id": [1], "country": ["FR"],
                      "event_time": pd.to_datetime(["2024-01-02T00:00:00Z"], utc=True)}),
    )
    workspace.online.materialize()
    profiles_mark = workspace.online.readiness()["profiles"].watermark
    workspace.online.close()
    refused = run(ws, "sources", "reset", "purchases", input="n\n")
    assert refused.exit_code == 1 and "3 stored fact versions" in refused.output
    assert pt.open(ws).fact_log.summary("purchases").rows == 3
    done = run(ws, "sources", "reset", "purchases", "--yes")
    assert done.exit_code == 0, done.output
    assert "3 fact versions removed" in done.output
    after = pt.open(ws)
    assert after.fact_log.summary("purchases").rows == 0
    assert list((ws / "data" / "facts" / "purchases").rglob("*.parquet")) == []
    # New facts after a reset are not served from the old watermark: reads refuse, never zeros.
    assert after.online.readiness()["profiles"].watermark == profiles_mark  # only purchases
    after.ingest("purchases", purchases())
    with pytest.raises(NotReadyError):
        after.online.get_features(
            "customer_features", {"customer_id": 1, "at": datetime(2024, 2, 1, tzinfo=UTC)}
        )


def test_delete_frees_the_name_for_another_definition(ws: Path) -> None:
    done = run(ws, "sources", "delete", "purchases", "--yes")
    assert done.exit_code == 0, done.output
    assert not (ws / "data" / "facts" / "purchases").exists()
    assert "purchases" not in pt.open(ws).fact_log.sources()
    other = pt.EventSource(
        "purchases", pt.Entity("customer", {"customer_id": int}), {"amount": float}
    )
    log = pt.FactLog(ws / "data" / "facts")
    log.ingest(other, purchases().drop(columns=["item"]))  # a changed schema is accepted now
    assert log.summary("purchases").rows == 3


def test_unknown_source_is_one_line(ws: Path) -> None:
    result = run(ws, "sources", "reset", "nope", "--yes")
    assert result.exit_code == 2 and "no source 'nope'" in result.output
