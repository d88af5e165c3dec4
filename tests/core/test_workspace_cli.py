"""The workspace and the CLI, used as a new user would: init, ingest, training-set."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import parity as pt
from parity.cli import main
from parity.errors import NotFoundError, SchemaError, WorkspaceError


def purchases_csv(path: Path) -> Path:
    frame = pd.DataFrame(
        {
            "customer_id": [1, 1, 2],
            "amount": [10.0, 5.0, 7.0],
            "item": ["a", "b", "a"],
            "ts": ["2024-01-01T10:00:00Z", "2024-01-20T10:00:00Z", "2024-01-21T10:00:00Z"],
        }
    )
    frame.to_csv(path, index=False)
    return path


def contexts_parquet(path: Path) -> Path:
    frame = pd.DataFrame(
        {
            "customer_id": [1, 2, 1],
            "at": pd.to_datetime(["2024-01-25", "2024-01-25", "2024-01-01"], utc=True),
            "label": [1, 0, 1],
        }
    )
    frame.to_parquet(path)
    return path


def test_cli_end_to_end(tmp_path: Path) -> None:
    runner = CliRunner()
    ws = tmp_path / "proj"
    result = runner.invoke(main, ["init", str(ws)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        main,
        [
            "-w",
            str(ws),
            "ingest",
            "purchases",
            str(purchases_csv(tmp_path / "p.csv")),
            "--rename",
            "ts=event_time",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "ingested 3 facts" in result.output
    out = tmp_path / "train.parquet"
    result = runner.invoke(
        main,
        [
            "-w",
            str(ws),
            "training-set",
            str(contexts_parquet(tmp_path / "c.parquet")),
            "-f",
            "customer_features",
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    table = pq.read_table(out).to_pandas()
    assert table["label"].tolist() == [1, 0, 1]
    assert table["orders_30d"].tolist() == [2, 1, 0]
    assert table["spend_30d"].tolist() == [15.0, 7.0, 0.0]
    assert table["avg_order_30d"].tolist()[:2] == [7.5, 7.0]
    result = runner.invoke(main, ["-w", str(ws), "features"])
    assert result.exit_code == 0 and "customer_features" in result.output


def test_cli_errors_are_one_line_not_tracebacks(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["-w", str(tmp_path), "features"])
    assert result.exit_code == 2
    assert "no parity.yaml" in result.output and "Traceback" not in result.output
    runner.invoke(main, ["init", str(tmp_path)])
    bad = tmp_path / "bad.csv"
    pd.DataFrame(
        {"customer_id": [1], "amount": [1.0], "item": ["a"], "event_time": ["2024-01-01T00:00:00"]}
    ).to_csv(bad, index=False)
    result = runner.invoke(main, ["-w", str(tmp_path), "ingest", "purchases", str(bad)])
    assert result.exit_code == 2
    assert "no time zone" in result.output and "Traceback" not in result.output
    result = runner.invoke(main, ["-w", str(tmp_path), "ingest", "nope", str(bad)])
    assert "no source 'nope'" in result.output


def test_open_rejects_bad_config(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="no parity.yaml"):
        pt.open(tmp_path)
    (tmp_path / "parity.yaml").write_text("enginee: duckdb\n")
    with pytest.raises(WorkspaceError, match="unknown setting\\(s\\) enginee"):
        pt.open(tmp_path)
    (tmp_path / "parity.yaml").write_text("engine: [\n")
    with pytest.raises(WorkspaceError, match="not valid YAML"):
        pt.open(tmp_path)


def test_workspace_training_set_and_contexts_errors(tmp_path: Path) -> None:
    ws = pt.open(pt.init(tmp_path))
    frame = pd.read_csv(purchases_csv(tmp_path / "p.csv")).rename(columns={"ts": "event_time"})
    ws.ingest("purchases", frame)
    with pytest.raises(NotFoundError, match="no feature set 'nope'"):
        ws.training_set(contexts_parquet(tmp_path / "c.parquet"), "nope")
    with pytest.raises(SchemaError, match="needs entity key column 'customer_id'"):
        ws.training_set(
            pd.DataFrame({"at": pd.to_datetime(["2024-01-01"], utc=True)}), "customer_features"
        )
    with pytest.raises(SchemaError, match="contexts need an 'at' column"):
        ws.training_set(pd.DataFrame({"customer_id": [1]}), "customer_features")
    naive = pd.DataFrame({"customer_id": [1], "at": pd.to_datetime(["2024-01-01"])})
    with pytest.raises(Exception, match="naive"):
        ws.training_set(naive, "customer_features")
    clash = pd.DataFrame(
        {"customer_id": [1], "at": pd.to_datetime(["2024-01-01"], utc=True), "spend_30d": [1.0]}
    )
    with pytest.raises(SchemaError, match="already have a column 'spend_30d'"):
        ws.training_set(clash, "customer_features")


def test_unknown_offline_setting_names_it_and_the_known_ones(tmp_path: Path) -> None:
    pt.init(tmp_path)
    config = tmp_path / "parity.yaml"
    config.write_text(config.read_text().replace("memory_limit: 4GB", "memory_limt: 4GB"))
    ws = pt.open(tmp_path)
    with pytest.raises(WorkspaceError, match="unknown offline setting\\(s\\) memory_limt") as caught:
        _ = ws.engine
    assert "memory_limit" in str(caught.value) and "TypeError" not in str(caught.value)
    config.write_text("offline: 4GB\n")
    with pytest.raises(WorkspaceError, match="'offline:' must be a mapping"):
        _ = pt.open(tmp_path).engine


def test_read_only_commands_create_no_online_store(tmp_path: Path) -> None:
    ws = pt.init(tmp_path / "proj")
    runner = CliRunner()
    for command in (["features"], ["sources"]):
        result = runner.invoke(main, ["-w", str(ws), *command])
        assert result.exit_code == 0, result.output
    assert not (ws / "data" / "online.db").exists()
    reader = pt.open(ws).online_reader
    assert reader.readiness()["purchases"].materialized  # nothing logged, nothing to apply
    assert not (ws / "data" / "online.db").exists()

