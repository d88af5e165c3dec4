"""The CLI's one error path: every known failure is one line, exit code 2, no traceback.

Each case here printed a traceback before (issue 9 item 5); ``--debug`` brings it back.
"""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

import parity as pt
from parity.cli import main
from parity.cli.app import describe_failure
from parity.errors import StorageError


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    return pt.init(tmp_path / "proj")


def rows(n: int = 2) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": list(range(1, n + 1)),
            "amount": [1.5] * n,
            "item": ["a"] * n,
            "event_time": ["2024-01-01T10:00:00Z"] * n,
        }
    )


def ingest(ws: Path, file: Path, *extra: str) -> Result:
    return CliRunner().invoke(main, ["-w", str(ws), "ingest", "purchases", str(file), *extra])


def assert_one_line_error(result: Result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    text = " ".join(result.output.split())  # rich may wrap; compare with single spaces
    for needle in needles:
        assert needle in text, (needle, result.output)


def test_zero_byte_csv(ws: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    assert_one_line_error(ingest(ws, empty), "empty.csv", "is empty (0 bytes)")


def test_header_only_csv_says_no_rows(ws: Path, tmp_path: Path) -> None:
    header = tmp_path / "header.csv"
    header.write_text("customer_id,amount,item,event_time\n")
    result = ingest(ws, header)
    assert_one_line_error(result, "header.csv", "no rows")
    assert "type null" not in result.output


@pytest.mark.parametrize("cut", [0, 0.5])
def test_empty_or_truncated_parquet(ws: Path, tmp_path: Path, cut: float) -> None:
    whole = tmp_path / "whole.parquet"
    pq.write_table(pa.Table.from_pandas(rows(500), preserve_index=False), whole)
    data = whole.read_bytes()
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(data[: int(len(data) * cut)])
    assert_one_line_error(ingest(ws, broken), "broken.parquet")


def test_folder_of_csvs_is_one_data_set(ws: Path, tmp_path: Path) -> None:
    folder = tmp_path / "days"
    folder.mkdir()
    rows(2).to_csv(folder / "a.csv", index=False)
    rows(3).assign(customer_id=[7, 8, 9]).to_csv(folder / "b.csv", index=False)
    result = ingest(ws, folder)
    assert result.exit_code == 0, result.output
    assert "ingested 5 facts" in result.output


def test_folder_without_data_files_is_refused(ws: Path, tmp_path: Path) -> None:
    folder = tmp_path / "nothing"
    folder.mkdir()
    (folder / "notes.md").write_text("hi")
    assert_one_line_error(ingest(ws, folder), "holds no .parquet or .csv files")


def test_key_beyond_int64_names_column_and_row(ws: Path, tmp_path: Path) -> None:
    csv = tmp_path / "big.csv"
    csv.write_text(
        "customer_id,amount,item,event_time\n"
        "5,1.0,a,2024-01-01T00:00:00Z\n"
        f"{2**70},1.0,a,2024-01-01T00:00:00Z\n"
    )
    assert_one_line_error(ingest(ws, csv), "'customer_id'", "row 1", "64-bit integer")


def test_integer_past_2_53_in_a_float_column_is_not_rounded(ws: Path, tmp_path: Path) -> None:
    """A column read as float because of one big value must not silently round the others."""
    csv = tmp_path / "big.csv"
    csv.write_text(
        "customer_id,amount,item,event_time\n"
        f"{2**60 + 1},1.0,a,2024-01-01T00:00:00Z\n"
        "1.0,1.0,a,2024-01-01T00:00:00Z\n"
    )
    assert_one_line_error(ingest(ws, csv), "'customer_id'", "row 0")


def test_disk_full_on_ingest(ws: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    csv = tmp_path / "p.csv"
    rows().to_csv(csv, index=False)

    def full(part: pa.Table, path: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr("parity.factlog._write_parquet", full)
    assert_one_line_error(ingest(ws, csv), "No space left on device", "nothing was committed")
    monkeypatch.undo()
    assert pt.open(ws).fact_log.read(pt.open(ws).definitions.source("purchases")).num_rows == 0
    assert ingest(ws, csv).exit_code == 0


def test_read_only_workspace(ws: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    csv = tmp_path / "p.csv"
    rows().to_csv(csv, index=False)
    real_open = open

    def read_only(file, mode="r", *args, **kwargs):  # type: ignore[no-untyped-def]
        if str(file).endswith("_lock"):
            raise OSError(errno.EROFS, "Read-only file system", str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", read_only)
    assert_one_line_error(ingest(ws, csv), "Read-only file system", "_lock")


def test_storage_error_is_a_storage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = pt.open(pt.init(tmp_path))

    def full(part: pa.Table, path: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr("parity.factlog._write_parquet", full)
    frame = rows().assign(event_time=pd.to_datetime(rows().event_time, utc=True))
    with pytest.raises(StorageError, match="No space left") as caught:
        ws.ingest("purchases", frame)
    assert caught.value.errno == errno.ENOSPC


def test_infinite_floats_are_refused_nan_is_null(ws: Path, tmp_path: Path) -> None:
    csv = tmp_path / "inf.csv"
    csv.write_text(
        "customer_id,amount,item,event_time\n"
        "1,1.0,a,2024-01-01T00:00:00Z\n"
        "2,inf,a,2024-01-01T00:00:00Z\n"
    )
    assert_one_line_error(ingest(ws, csv), "'amount'", "row 1", "finite")
    nan = tmp_path / "nan.csv"
    nan.write_text(
        "customer_id,amount,item,event_time\n"
        "1,1.0,a,2024-01-01T00:00:00Z\n"
        "2,nan,a,2024-01-01T00:00:00Z\n"
    )
    assert ingest(ws, nan).exit_code == 0
    workspace = pt.open(ws)
    stored = workspace.fact_log.read(workspace.definitions.source("purchases"))
    assert sorted(stored.column("amount").to_pylist(), key=str) == [1.0, None]


def test_debug_shows_the_traceback(ws: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    result = CliRunner().invoke(main, ["-w", str(ws), "--debug", "ingest", "purchases", str(empty)])
    assert result.exit_code != 0
    assert isinstance(result.exception, pt.InputError)


def test_usage_errors_stay_clicks(ws: Path) -> None:
    result = CliRunner().invoke(main, ["-w", str(ws), "ingest"])
    assert result.exit_code == 2 and "Usage:" in result.output


def test_unknown_exceptions_are_not_hidden(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug keeps its traceback: only known failures are summarised."""

    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(pt.Workspace, "ingest", broken)
    result = CliRunner().invoke(main, ["-w", str(ws), "ingest", "purchases", str(ws)])
    assert isinstance(result.exception, ZeroDivisionError)


@pytest.mark.parametrize(
    ("exc", "needles"),
    [
        (OSError(errno.ENOSPC, "No space left on device", "/data/x"), ["/data/x", "free space"]),
        (PermissionError(errno.EACCES, "Permission denied", "/data/y"), ["/data/y", "owner"]),
        (OSError(errno.EROFS, "Read-only file system", "/ro"), ["/ro", "read-only"]),
        (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), ["could not connect"]),
        (sqlite3.OperationalError("unable to open database file"), ["unable to open database"]),
        (pa.ArrowInvalid("bad bytes"), ["bad bytes"]),
        (pt.NotFoundError("no source 'x'"), ["no source 'x'"]),
    ],
)
def test_describe_failure_covers_known_failures(exc: BaseException, needles: list[str]) -> None:
    message = describe_failure(exc)
    assert message is not None and "\n" not in message
    for needle in needles:
        assert needle in message


def test_unreachable_service_by_driver_class_name() -> None:
    redis_exceptions = pytest.importorskip("redis.exceptions")
    message = describe_failure(redis_exceptions.ConnectionError("Error 111 connecting"))
    assert message is not None and "did not answer" in message


def test_unreachable_online_store_is_one_line(ws: Path) -> None:
    pytest.importorskip("redis")
    config = ws / "parity.yaml"
    # Port 1 on localhost: nothing listens there, the connection is refused at once.
    config.write_text(config.read_text().replace("online: sqlite", "online: redis://127.0.0.1:1/0"))
    result = CliRunner().invoke(main, ["-w", str(ws), "sources", "reset", "purchases", "--yes"])
    assert_one_line_error(result)
    assert "127.0.0.1" in result.output or "connect" in result.output
    listing = CliRunner().invoke(main, ["-w", str(ws), "sources"])
    assert listing.exit_code == 0 and "online store unreachable" in listing.output
