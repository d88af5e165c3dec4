"""`parity materialize | push | get | skew-check` over a starter workspace (memory store)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import click
import pandas as pd
from click.testing import CliRunner

import parity as pt
from parity.cli.online import COMMANDS

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def cli_for(root: Path) -> tuple[click.Group, SimpleNamespace]:
    workspace = pt.open(root)
    holder = SimpleNamespace(workspace=workspace)

    @click.group()
    @click.pass_context
    def main(ctx: click.Context) -> None:
        ctx.obj = holder

    for command in COMMANDS:
        main.add_command(command)
    return main, holder


def make_workspace(root: Path) -> None:
    pt.init(root)
    config = root / "parity.yaml"
    config.write_text(config.read_text().replace("online: sqlite  ", "online: memory://"))
    history = pd.DataFrame(
        {
            "customer_id": [1, 1, 2],
            "amount": [10.0, 5.5, 3.0],
            "item": ["a", "b", "a"],
            "event_time": [
                NOW - timedelta(days=3),
                NOW - timedelta(days=2),
                NOW - timedelta(days=2),
            ],
        }
    )
    pt.open(root).ingest("purchases", history)


def test_materialize_push_get_and_skew_check(tmp_path: Path) -> None:
    make_workspace(tmp_path)
    main, holder = cli_for(tmp_path)
    runner = CliRunner()
    result = runner.invoke(main, ["materialize"])
    assert result.exit_code == 0, result.output
    assert "purchases: 3 fact versions read" in result.output

    fresh = tmp_path / "fresh.csv"
    recent = (NOW - timedelta(hours=1)).isoformat()
    fresh.write_text(f"customer_id,amount,item,event_time\n1,7.25,c,{recent}\n")
    result = runner.invoke(main, ["push", "purchases", str(fresh)])
    assert result.exit_code == 0, result.output
    assert "pushed 1 facts" in result.output

    result = runner.invoke(main, ["get", "customer_features", "--key", "customer_id=1", "--json"])
    assert result.exit_code == 0, result.output
    values = json.loads(result.output)
    assert values["orders_30d"] == 3 and values["spend_30d"] == 22.75
    assert (
        holder.workspace.fact_log.read(holder.workspace.definitions.source("purchases")).num_rows
        == 4
    )

    result = runner.invoke(
        main,
        [
            "get",
            "customer_features",
            "--key",
            "customer_id=1",
            "--at",
            (NOW - timedelta(minutes=30)).isoformat(),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "spend_30d" in result.output

    result = runner.invoke(
        main, ["skew-check", "--requests", "50", "--batch", "1", "--lookback", "none"]
    )
    assert result.exit_code == 0, result.output
    assert "OK: online and offline agree" in result.output


def test_cli_errors_are_one_clear_line(tmp_path: Path) -> None:
    make_workspace(tmp_path)
    main, _ = cli_for(tmp_path)
    runner = CliRunner()
    result = runner.invoke(main, ["get", "customer_features", "--key", "customer_id=abc"])
    assert result.exit_code == 1 and "declared 'int'" in result.output
    result = runner.invoke(main, ["get", "nope", "--key", "customer_id=1"])
    assert result.exit_code == 1 and "no feature set 'nope'" in result.output
    bad = tmp_path / "bad.csv"
    bad.write_text("customer_id,amount,item,event_time\n1,7.25,c,2024-03-03T09:00:00\n")
    result = runner.invoke(main, ["push", "purchases", str(bad)])
    assert result.exit_code == 1 and "time zone" in result.output
