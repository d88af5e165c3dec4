"""`parity models ...` on a real (SQLite) registry, through click's test runner."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from parity.cli.models import models
from parity.registry import Registry, SqliteRegistry


class Doubler:
    def predict(self, X: list[float]) -> list[float]:
        return [2 * x for x in X]


@dataclass
class Workspace:
    """Stands in for the workspace object: the CLI only needs `.registry`."""

    registry: Registry | None


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    registry = SqliteRegistry(tmp_path / "registry.db", tmp_path / "artifacts")
    for auc in (0.70, 0.75, 0.80):
        registry.register(
            "churn",
            Doubler(),
            feature_sets={"member_features": "fs_v1"},
            training_set={
                "source": "plays",
                "knowledge_cutoff": datetime(2024, 5, 1, tzinfo=timezone.utc),
            },
            params={"depth": 4},
            metrics={"auc": auc},
            description="gradient boosting",
            code_dir=tmp_path,
        )
    registry.register("ranker", Doubler(), feature_sets={}, code_dir=tmp_path)
    registry.set_alias("churn", "live", 1, reason="launch")
    return registry


def run(registry: Registry | None, *args: str) -> Result:
    return CliRunner().invoke(
        models, list(args), obj=Workspace(registry), env={"COLUMNS": "200"}, catch_exceptions=False
    )


def test_list_shows_every_model_with_latest_version_and_aliases(registry: Registry) -> None:
    result = run(registry, "list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    churn = next(line for line in lines if "churn" in line)
    assert "3" in churn and "live -> 1" in churn
    assert any("ranker" in line for line in lines)


def test_show_resolves_latest_version_and_alias(registry: Registry) -> None:
    latest = run(registry, "show", "churn")
    assert latest.exit_code == 0, latest.output
    assert "churn version 3" in latest.output and "0.8" in latest.output

    live = run(registry, "show", "churn@live")
    assert live.exit_code == 0, live.output
    mv = registry.get("churn", 1)
    for expected in (
        "churn version 1",
        mv.artifact_sha256,
        "member_features",
        "fs_v1",
        "2024-05-01T00:00:00+00:00",
        "depth",
        "0.7",
        "gradient boosting",
        "not registered from a git work tree",
    ):
        assert expected in live.output, expected

    assert "churn version 2" in run(registry, "show", "churn@2").output


def test_promote_moves_the_alias_and_records_reason_and_actor(registry: Registry) -> None:
    result = run(registry, "promote", "churn", "3", "--reason", "auc +5%")
    assert result.exit_code == 0, result.output
    assert "churn: live 1 -> 3" in result.output
    assert registry.get("churn", "live").version == 3
    event = registry.alias_history("churn", "live")[-1]
    assert (event.reason, event.from_version, event.to_version) == ("auc +5%", 1, 3)
    assert event.actor  # the OS user

    candidate = run(registry, "promote", "churn", "2", "--alias", "candidate")
    assert "churn: candidate unset -> 2" in candidate.output
    again = run(registry, "promote", "churn", "2", "--alias", "candidate")
    assert again.exit_code == 0 and "nothing changed" in again.output


def test_rollback_returns_to_the_previous_version(registry: Registry) -> None:
    run(registry, "promote", "churn", "3")
    result = run(registry, "rollback", "churn", "--reason", "error rate alert")
    assert result.exit_code == 0, result.output
    assert "churn: live 3 -> 1 (rolled back)" in result.output
    assert registry.get("churn", "live").version == 1
    assert registry.alias_history("churn", "live")[-1].reason == "error rate alert"


def test_history_lists_alias_moves(registry: Registry) -> None:
    run(registry, "promote", "churn", "2", "--reason", "retrain")
    result = run(registry, "history", "churn", "--alias", "live")
    assert result.exit_code == 0, result.output
    assert "launch" in result.output and "retrain" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("show", "nope"), "no model named 'nope'; registered models: churn, ranker"),
        (("show", "churn@9"), "has no version 9; it has versions 1, 2, 3"),
        (("show", "churn@prod"), "no alias 'prod'"),
        (("promote", "churn", "7"), "has no version 7"),
        (("rollback", "ranker"), "never been set"),
    ],
)
def test_errors_are_one_line_messages_with_exit_code_1(
    registry: Registry, args: Any, message: str
) -> None:
    result = run(registry, *args)
    assert result.exit_code == 1
    assert "Error:" in result.output and message in result.output
    assert "Traceback" not in result.output


def test_without_a_registry_the_cli_says_what_is_missing() -> None:
    result = run(None, "list")
    assert result.exit_code == 1
    assert "needs a parity workspace" in result.output


def test_an_empty_registry_says_how_to_register(tmp_path: Path) -> None:
    empty = SqliteRegistry(tmp_path / "r.db", tmp_path / "a")
    result = run(empty, "list")
    assert result.exit_code == 0 and "No models registered yet" in result.output


@pytest.mark.parametrize("command", ["list", "show", "promote", "rollback", "history"])
def test_every_command_help_explains_itself_with_an_example(command: str) -> None:
    result = CliRunner().invoke(models, [command, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output and f"parity models {command}" in result.output
