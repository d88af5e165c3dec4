"""Ingestion loses nothing silently: unknown columns, id schemes, declared time zones."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import parity as pt
from parity.cli import main
from parity.errors import InputError, SchemaError, TimeError

customer = pt.Entity("customer", {"customer_id": int})
purchases = pt.EventSource("purchases", customer, {"amount": float, "item": str}, lag="1h")
UTC = timezone.utc


def rides(n: int = 3) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ride_id": [f"r{i}" for i in range(n)],
            "customer_id": list(range(n)),
            "amount": [1.5] * n,
            "item": ["a"] * n,
            "event_time": pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC"),
        }
    )


def test_unknown_column_is_an_error_naming_it_and_the_fixes(tmp_path: Path) -> None:
    log = pt.FactLog(tmp_path)
    with pytest.raises(SchemaError) as caught:
        log.ingest(purchases, rides())
    message = str(caught.value)
    assert "'ride_id'" in message
    for fix in ("--rename ride_id=fact_id", "--drop ride_id", "--drop-extra"):
        assert fix in message
    assert log.read(purchases).num_rows == 0


def test_drop_and_drop_extra_are_reported(tmp_path: Path) -> None:
    log = pt.FactLog(tmp_path)
    report = log.ingest(purchases, rides(), drop=["ride_id"])
    assert report.rows_written == 3 and report.columns_dropped == ("ride_id",)
    extra = rides().assign(note="x", event_time=pd.date_range("2024-02-01", periods=3, tz="UTC"))
    report = log.ingest(purchases, extra, drop_extra=True)
    assert report.rows_written == 3 and set(report.columns_dropped) == {"ride_id", "note"}


def test_rename_or_drop_of_a_missing_column_is_an_error(tmp_path: Path) -> None:
    log = pt.FactLog(tmp_path)
    with pytest.raises(SchemaError, match="--rename ts=event_time names a column the data does"):
        log.ingest(purchases, rides(), rename={"ts": "event_time"}, drop=["ride_id"])
    with pytest.raises(SchemaError, match="--drop nope names a column"):
        log.ingest(purchases, rides(), drop=["nope"])
    with pytest.raises(SchemaError, match="two columns are named 'event_time'"):
        log.ingest(purchases, rides(), rename={"ride_id": "event_time"})


def test_same_facts_under_another_id_scheme_are_refused(tmp_path: Path) -> None:
    """The repro of issue 8.4: ingest, then the same file with --rename ride_id=fact_id."""
    log = pt.FactLog(tmp_path)
    log.ingest(purchases, rides(), drop=["ride_id"])
    with pytest.raises(InputError, match="equal facts already logged except for their fact_id"):
        log.ingest(purchases, rides(), rename={"ride_id": "fact_id"})
    assert log.read(purchases).num_rows == 3
    # The same file with the same scheme stays harmless.
    assert log.ingest(purchases, rides(), drop=["ride_id"]).duplicates_skipped == 3


def test_given_ids_first_then_derived_ids_are_refused_too(tmp_path: Path) -> None:
    log = pt.FactLog(tmp_path)
    log.ingest(purchases, rides(), rename={"ride_id": "fact_id"})
    with pytest.raises(InputError, match="equal facts already logged except for their fact_id"):
        log.ingest(purchases, rides(), drop=["ride_id"])
    assert log.read(purchases).num_rows == 3


def test_equal_content_under_two_given_ids_is_two_facts(tmp_path: Path) -> None:
    """Two identical purchases with their own ids are two facts, in one batch or in two
    (found by the online catalog: a second push of an identical play was refused after the
    online store had already taken it)."""
    log = pt.FactLog(tmp_path)
    first = rides().rename(columns={"ride_id": "fact_id"})
    log.ingest(purchases, first)
    second = first.assign(fact_id=first.fact_id.astype(str) + "-again")
    assert log.ingest(purchases, second).rows_written == 3
    assert log.read(purchases).num_rows == 6


def test_same_facts_under_another_id_scheme_cli(tmp_path: Path) -> None:
    ws = pt.init(tmp_path / "ws")
    csv = tmp_path / "rides.csv"
    rides().assign(event_time=lambda d: d.event_time.dt.strftime("%Y-%m-%dT%H:%M:%SZ")).to_csv(
        csv, index=False
    )
    runner = CliRunner()
    base = ["-w", str(ws), "ingest", "purchases", str(csv)]
    first = runner.invoke(main, base)
    assert first.exit_code == 2 and "--drop ride_id" in first.output
    assert runner.invoke(main, [*base, "--drop", "ride_id"]).exit_code == 0
    again = runner.invoke(main, [*base, "--rename", "ride_id=fact_id"])
    assert again.exit_code == 2 and "sources reset purchases" in " ".join(again.output.split())
    workspace = pt.open(ws)
    assert workspace.fact_log.read(workspace.definitions.source("purchases")).num_rows == 3


def test_naive_times_need_a_declared_zone(tmp_path: Path) -> None:
    log = pt.FactLog(tmp_path)
    frame = rides().drop(columns=["ride_id"])
    frame["event_time"] = ["2024-07-01T12:00:00", "2024-07-01T13:00:00", "2024-07-01T14:00:00"]
    with pytest.raises(TimeError, match="--tz ZONE"):
        log.ingest(purchases, frame)
    log.ingest(purchases, frame, tz="Europe/Paris")
    stored = sorted(log.read(purchases).column("event_time").to_pylist())
    assert stored[0] == datetime(2024, 7, 1, 10, 0, tzinfo=UTC)  # CEST is UTC+2


def test_declared_zone_applies_to_naive_arrow_timestamps_not_to_aware(tmp_path: Path) -> None:
    log = pt.FactLog(tmp_path)
    naive = rides(1).drop(columns=["ride_id"])
    naive["event_time"] = naive["event_time"].dt.tz_localize(None)
    log.ingest(purchases, naive, tz="America/New_York")
    aware = rides(1).drop(columns=["ride_id"]).assign(customer_id=[9])
    log.ingest(purchases, aware, tz="America/New_York")
    times = dict(
        zip(
            log.read(purchases).column("customer_id").to_pylist(),
            log.read(purchases).column("event_time").to_pylist(),
        )
    )
    assert times[0] == datetime(2024, 1, 1, 5, 0, tzinfo=UTC)  # EST is UTC-5
    assert times[9] == datetime(2024, 1, 1, 0, 0, tzinfo=UTC)  # an offset given wins


def test_declared_zone_refuses_dst_gaps_and_unknown_zones(tmp_path: Path) -> None:
    log = pt.FactLog(tmp_path)
    frame = rides(1).drop(columns=["ride_id"])
    frame["event_time"] = ["2024-03-31T02:30:00"]
    with pytest.raises(TimeError, match="does not exist in Europe/Paris"):
        log.ingest(purchases, frame, tz="Europe/Paris")
    frame["event_time"] = ["2024-10-27T02:30:00"]
    with pytest.raises(TimeError, match="is ambiguous in Europe/Paris"):
        log.ingest(purchases, frame, tz="Europe/Paris")
    with pytest.raises(InputError, match="--tz Mars/Olympus: unknown time zone"):
        log.ingest(purchases, frame, tz="Mars/Olympus")


def test_tz_option_on_the_cli(tmp_path: Path) -> None:
    ws = pt.init(tmp_path / "ws")
    csv = tmp_path / "naive.csv"
    csv.write_text("customer_id,amount,item,event_time\n1,2.0,a,2024-07-01 12:00:00\n")
    runner = CliRunner()
    refused = runner.invoke(main, ["-w", str(ws), "ingest", "purchases", str(csv)])
    assert refused.exit_code == 2 and "--tz ZONE" in refused.output
    ok = runner.invoke(main, ["-w", str(ws), "ingest", "purchases", str(csv), "--tz", "UTC"])
    assert ok.exit_code == 0, ok.output


def test_hints_are_cli_syntax_not_python(tmp_path: Path) -> None:
    log = pt.FactLog(tmp_path)
    frame = rides().drop(columns=["ride_id"]).rename(columns={"event_time": "ts"})
    with pytest.raises(SchemaError) as caught:
        log.ingest(purchases, frame)
    assert "--rename ts=event_time" in str(caught.value)
    assert "rename={" not in str(caught.value)


def test_unsigned_key_beyond_int64_names_the_row(tmp_path: Path) -> None:
    import pyarrow as pa

    frame = pa.table(
        {
            "customer_id": pa.array([1, 2**64 - 1], pa.uint64()),
            "amount": [1.0, 2.0],
            "item": ["a", "b"],
            "event_time": pa.array([datetime(2024, 1, 1, tzinfo=UTC)] * 2),
        }
    )
    with pytest.raises(SchemaError, match="'customer_id'.*row 1 holds 18446744073709551615"):
        pt.FactLog(tmp_path).ingest(purchases, frame)
