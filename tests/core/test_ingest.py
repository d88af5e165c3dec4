"""Ingestion: every bad batch is rejected with a message naming column and row, and nothing is
written; appends are atomic under exceptions and crashes; corrections and tombstones."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

import parity as pt
from parity.errors import InputError, SchemaError, TimeError

customer = pt.Entity("customer", {"customer_id": int})
purchases = pt.EventSource("purchases", customer, {"amount": float, "item": str}, lag="1h")
UTC = timezone.utc


def good(n: int = 3) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": list(range(n)),
            "amount": [1.5] * n,
            "item": ["a"] * n,
            "event_time": pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC"),
        }
    )


def nothing_written(log: pt.FactLog) -> bool:
    return log.files(purchases) == [] and log.read(purchases).num_rows == 0


@pytest.mark.parametrize(
    ("mutate", "error", "message"),
    [
        (lambda d: d.drop(columns=["customer_id"]), SchemaError, "missing column 'customer_id'"),
        (lambda d: d.drop(columns=["event_time"]), SchemaError, "missing column 'event_time'"),
        (
            lambda d: d.assign(customer_id=["x", "y", "z"]),
            SchemaError,
            "column 'customer_id' has type (large_)?string, expected 'int'",
        ),
        (
            lambda d: d.assign(amount=["1", "2", "3"]),
            SchemaError,
            "column 'amount' has type (large_)?string, expected 'float'",
        ),
        (
            lambda d: d.assign(customer_id=[1.0, None, 3.0]),
            SchemaError,
            "key column 'customer_id' is null in row 1",
        ),
        (lambda d: d.assign(customer_id=[1.0, 2.5, 3.0]), SchemaError, "row 1 holds 2.5"),
        (
            lambda d: d.assign(event_time=d.event_time.dt.tz_localize(None)),
            TimeError,
            "naive timestamps",
        ),
        (
            lambda d: d.assign(
                event_time=["2024-01-01T00:00:00Z", "yesterday", "2024-01-01T00:00:00Z"]
            ),
            TimeError,
            "row 1: cannot parse 'yesterday'",
        ),
        (
            lambda d: d.assign(
                event_time=["2024-01-01T00:00:00Z", "2024-01-01T00:00:00", "2024-01-01T00:00:00Z"]
            ),
            TimeError,
            "row 1: '2024-01-01T00:00:00' has no time zone",
        ),
        (
            lambda d: d.assign(event_time=[d.event_time[0], pd.NaT, d.event_time[2]]),
            TimeError,
            "is null in row 1",
        ),
        (
            lambda d: d.assign(recorded_at=d.event_time.dt.tz_localize(None)),
            TimeError,
            "'recorded_at' holds naive",
        ),
        (
            lambda d: d.assign(
                fact_id=["a", "a", "b"],
                amount=[1.0, 2.0, 3.0],
                event_time=[d.event_time[0]] * 3,
                customer_id=[1, 1, 1],
            ),
            SchemaError,
            "share fact_id 'a'",
        ),
    ],
)
def test_bad_batches_are_rejected_whole(tmp_path: Path, mutate, error, message) -> None:  # type: ignore[no-untyped-def]
    log = pt.FactLog(tmp_path)
    with pytest.raises(error, match=message):
        log.ingest(purchases, mutate(good()))
    assert nothing_written(log)


def test_wrong_input_kind(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="expected a pyarrow Table.*got list"):
        pt.FactLog(tmp_path).ingest(purchases, [1, 2, 3])  # type: ignore[arg-type]
    with pytest.raises(InputError, match="no such file"):
        pt.FactLog(tmp_path).ingest(purchases, tmp_path / "missing.parquet")


def test_parquet_csv_arrow_and_pandas_inputs_agree(tmp_path: Path) -> None:
    frame = good()
    csv_frame = frame.assign(event_time=frame.event_time.dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    pacsv.write_csv(pa.Table.from_pandas(csv_frame, preserve_index=False), tmp_path / "in.csv")
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "in.parquet")
    results = []
    for i, data in enumerate(
        [frame, pa.Table.from_pandas(frame), tmp_path / "in.parquet", tmp_path / "in.csv"]
    ):
        log = pt.FactLog(tmp_path / f"log{i}")
        log.ingest(purchases, data)
        results.append(log.read(purchases).sort_by("customer_id"))
    for other in results[1:]:
        assert other.equals(results[0])


def test_recorded_at_policies(tmp_path: Path) -> None:
    log = pt.FactLog(tmp_path)
    log.ingest(purchases, good(1))
    log.ingest(purchases, good(1).assign(amount=9.0), recorded_at=datetime(2030, 1, 1, tzinfo=UTC))
    given = good(1).assign(amount=7.0, recorded_at=pd.Timestamp("2025-01-01", tz="UTC"))
    log.ingest(purchases, given)
    recorded = sorted(log.read(purchases).column("recorded_at").to_pylist())
    assert recorded == [
        datetime(2024, 1, 1, 1, tzinfo=UTC),
        datetime(2025, 1, 1, tzinfo=UTC),
        datetime(2030, 1, 1, tzinfo=UTC),
    ]


def test_reingest_is_idempotent_and_conflicts_are_refused(tmp_path: Path) -> None:
    log = pt.FactLog(tmp_path)
    frame = good().assign(fact_id=["a", "b", "c"])
    assert log.ingest(purchases, frame).rows_written == 3
    again = log.ingest(purchases, frame)
    assert (again.rows_written, again.duplicates_skipped) == (0, 3)
    with pytest.raises(
        SchemaError, match="fact_id 'a' is already logged with the same recorded_at"
    ):
        log.ingest(purchases, frame.assign(amount=99.0))
    assert log.read(purchases).num_rows == 3


def test_corrections_and_tombstones(tmp_path: Path) -> None:
    log = pt.FactLog(tmp_path)
    log.ingest(purchases, good(2).assign(fact_id=["a", "b"]))
    fix = good(1).assign(
        fact_id=["a"], amount=[3.0], recorded_at=pd.Timestamp("2024-02-01", tz="UTC")
    )
    log.ingest(purchases, fix)
    log.delete(purchases, ["b"], recorded_at=datetime(2024, 3, 1, tzinfo=UTC))
    table = log.read(purchases).to_pandas().sort_values(["fact_id", "recorded_at"])
    assert table["fact_id"].tolist() == ["a", "a", "b", "b"]
    assert table["_tombstone"].tolist() == [False, False, False, True]
    with pytest.raises(InputError, match="cannot delete unknown fact_id 'zzz'"):
        log.delete(purchases, ["zzz"])


def test_changed_source_definition_is_refused(tmp_path: Path) -> None:
    log = pt.FactLog(tmp_path)
    log.ingest(purchases, good())
    changed = pt.EventSource("purchases", customer, {"amount": int, "item": str})
    with pytest.raises(SchemaError, match="no longer matches"):
        log.ingest(changed, good().assign(amount=1))


def test_exception_mid_append_leaves_nothing_visible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = pt.FactLog(tmp_path)
    log.ingest(purchases, good(2))
    before = log.read(purchases)
    calls = {"n": 0}
    real = pq.write_table

    def failing(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr("parity.factlog.pq.write_table", failing)
    many_days = good(100).assign(
        event_time=pd.date_range("2024-02-01", periods=100, freq="D", tz="UTC")
    )
    with pytest.raises(OSError, match="disk full"):
        log.ingest(purchases, many_days)
    assert log.read(purchases).equals(before)
    monkeypatch.undo()
    assert log.ingest(purchases, many_days).rows_written == 100
    assert log.read(purchases).num_rows == 102
    assert not list((tmp_path / "purchases").glob("_staging-*"))


def test_crash_mid_append_leaves_previous_state(tmp_path: Path) -> None:
    """A process killed after writing data files, before replacing the manifest, leaves old state."""
    script = textwrap.dedent(f"""
        import os, pandas as pd, parity as pt
        import parity.factlog as fl
        customer = pt.Entity("customer", {{"customer_id": int}})
        purchases = pt.EventSource("purchases", customer, {{"amount": float, "item": str}}, lag="1h")
        log = pt.FactLog({str(tmp_path)!r})
        frame = pd.DataFrame({{"customer_id": range(50), "amount": 1.0, "item": "a",
            "event_time": pd.date_range("2024-01-01", periods=50, freq="D", tz="UTC")}})
        log.ingest(purchases, frame)
        real = fl.os.replace
        count = {{"n": 0}}
        def dying(a, b):
            count["n"] += 1
            if count["n"] == 1:  # the manifest swap: every data file is written by now
                os._exit(9)  # like SIGKILL: no cleanup, no finally blocks
            return real(a, b)
        fl.os.replace = dying
        log.ingest(purchases, frame.assign(amount=2.0, customer_id=range(100, 150)))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 9, result.stderr
    log = pt.FactLog(tmp_path)
    table = log.read(purchases)
    assert table.num_rows == 50 and set(table.column("amount").to_pylist()) == {1.0}
    strays = [p for p in (tmp_path / "purchases").rglob("*.parquet")]
    assert len(strays) > 50  # moved files from the dead append are there, but invisible
    frame = good(1)
    log.ingest(purchases, frame)  # the next append cleans them up
    assert len(list((tmp_path / "purchases").rglob("*.parquet"))) == len(log.files(purchases))


def test_nanosecond_timestamps_are_truncated_to_microseconds(tmp_path: Path) -> None:
    log = pt.FactLog(tmp_path)
    frame = good(1)
    frame["event_time"] = pd.Series([pd.Timestamp("2024-01-01 00:00:00.123456789", tz="UTC")],
                                    dtype="datetime64[ns, UTC]")
    log.ingest(purchases, frame)
    stored = log.read(purchases).column("event_time")[0].as_py()
    assert stored == datetime(2024, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)
