"""`parity archive sync | export | latest` on a starter workspace (SQLite archive)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pyarrow.parquet as pq
from click.testing import CliRunner

import parity
from parity.archive import open_archive
from parity.cli.app import main


def test_archive_commands(tmp_path: Path) -> None:
    parity.workspace.init(tmp_path / "ws")
    ws = parity.open(tmp_path / "ws")
    purchases = ws.definitions.source("purchases")
    url = f"sqlite:///{ws.data_dir / 'archive.db'}"
    t = datetime(2024, 1, 1, tzinfo=timezone.utc)
    with open_archive(url, [purchases]) as archive:
        archive.append(
            purchases,
            [
                {
                    "customer_id": 7,
                    "amount": float(i),
                    "item": f"i{i}",
                    "event_time": t.replace(hour=i),
                    "recorded_at": t.replace(hour=i),
                }
                for i in range(6)
            ],
        )

    def run(*args: str) -> str:
        result = CliRunner().invoke(main, ["-w", str(ws.root), "archive", *args])
        assert result.exit_code == 0, result.output
        return result.output

    rows = [json.loads(line) for line in run("latest", "purchases", "7", "-n", "2").splitlines()]
    assert [r["item"] for r in rows] == ["i5", "i4"]
    assert "6 version(s)" in run("export", "purchases", str(tmp_path / "p.parquet"))
    assert pq.read_table(tmp_path / "p.parquet").num_rows == 6
    assert "6 new in the fact log" in run("sync")
    assert "0 new" in run("sync", "purchases")
    assert ws.fact_log.read(purchases).num_rows == 6
    bad = CliRunner().invoke(main, ["-w", str(ws.root), "archive", "latest", "purchases", "x"])
    assert bad.exit_code != 0 and "customer_id" in bad.output
