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
from parity.cli.app import ParityGroup
from parity.cli.online import COMMANDS

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def cli_for(root: Path) -> tuple[click.Group, SimpleNamespace]:
    """The real root group (its one error handler included), over one workspace object.

    The workspace object is shared between invocations because its memory store lives in it.
    """
    workspace = pt.open(root)
    holder = SimpleNamespace(workspace=workspace)

    @click.group(cls=ParityGroup)
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
    payload = json.loads(result.output)
    assert payload["found"] is True
    values = payload["features"]
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
    assert "spend_30d" in result.output and "found: yes" in result.output

    result = runner.invoke(main, ["get", "customer_features", "--key", "customer_id=99"])
    assert result.exit_code == 0, result.output
    assert "found: no" in result.output  # never seen: the zeros are not facts about it

    result = runner.invoke(
        main, ["skew-check", "--requests", "50", "--batch", "1", "--lookback", "none"]
    )
    assert result.exit_code == 0, result.output
    assert "OK: online and offline agree" in result.output
    assert "skew-check: 50 requests" in result.output  # as many as asked, not more


def test_cli_errors_are_one_clear_line(tmp_path: Path) -> None:
    make_workspace(tmp_path)
    main, _ = cli_for(tmp_path)
    runner = CliRunner()
    result = runner.invoke(main, ["get", "customer_features", "--key", "customer_id=abc"])
    assert result.exit_code == 2 and "declared 'int'" in result.output
    result = runner.invoke(main, ["get", "customer_features"])
    assert result.exit_code == 2 and "--key customer_id=..." in result.output
    result = runner.invoke(main, ["get", "nope", "--key", "customer_id=1"])
    assert result.exit_code == 2 and "no feature set 'nope'" in result.output
    bad = tmp_path / "bad.csv"
    bad.write_text("customer_id,amount,item,event_time\n1,7.25,c,2024-03-03T09:00:00\n")
    result = runner.invoke(main, ["push", "purchases", str(bad)])
    assert result.exit_code == 2 and "time zone" in result.output
    assert "Traceback" not in result.output


def test_get_before_materialize_refuses_with_the_cli_hint(tmp_path: Path) -> None:
    make_workspace(tmp_path)  # facts ingested, never materialized
    main, _ = cli_for(tmp_path)
    result = CliRunner().invoke(main, ["get", "customer_features", "--key", "customer_id=1"])
    assert result.exit_code == 2, result.output
    assert "`parity materialize customer_features`" in result.output
    assert "spend_30d" not in result.output  # no table of zeros


def test_get_opens_sqlite_read_only(tmp_path: Path) -> None:
    make_workspace(tmp_path)
    config = tmp_path / "parity.yaml"
    config.write_text(config.read_text().replace("online: memory://", "online: sqlite"))
    main, holder = cli_for(tmp_path)
    runner = CliRunner()
    store = tmp_path / "data" / "online.db"
    result = runner.invoke(main, ["get", "customer_features", "--key", "customer_id=1"])
    assert result.exit_code == 2 and "parity materialize" in result.output
    assert not store.exists()  # a refused read created nothing
    assert runner.invoke(main, ["materialize"]).exit_code == 0
    holder.workspace.online.close()  # as when `parity materialize` ends
    before = sorted(
        (p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in store.parent.iterdir()
    )
    result = runner.invoke(main, ["get", "customer_features", "--key", "customer_id=1"])
    assert result.exit_code == 0, result.output
    assert "found: yes" in result.output
    after = sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in store.parent.iterdir())
    assert after == before  # nothing created or changed: no -wal, -shm or -journal file
