"""`parity models ...` on a real workspace (SQLite registry), through the root CLI group, which
turns every error into one line with exit code 2."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result

import parity
from parity.cli.app import main
from parity.cli.models import models
from parity.registry import Registry
from parity.sentinel import CheckResult, Finding, Verdict, VerdictStore


def Doubler() -> Any:
    """A scikit-learn model (stored with skops) that doubles its one input."""
    from sklearn.linear_model import LinearRegression

    return LinearRegression().fit(np.array([[0.0], [1.0]]), np.array([0.0, 2.0]))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return parity.init(tmp_path / "ws")


@pytest.fixture
def registry(root: Path) -> Registry:
    registry: Registry = parity.open(root).registry
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
            code_dir=root.parent,
        )
    registry.register("ranker", Doubler(), feature_sets={}, code_dir=root.parent)
    registry.set_alias("churn", "live", 1, reason="launch")
    return registry


def run(registry: Registry, *args: str) -> Result:
    root = Path(registry.artifacts.root).parent.parent  # <workspace>/data/artifacts
    return CliRunner().invoke(
        main, ["--workspace", str(root), "models", *args], env={"COLUMNS": "200"}
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
        "skops (signed, verified)",
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
        (("promote", "churn", str(2**70)), "versions are integers from 1 to 2147483647"),
        (("rollback", "ranker"), "never been set"),
    ],
)
def test_errors_are_one_line_messages_with_exit_code_2(
    registry: Registry, args: Any, message: str
) -> None:
    result = run(registry, *args)
    assert result.exit_code == 2, result.output
    assert "error:" in result.output and message in " ".join(result.output.split())
    assert "Traceback" not in result.output and result.exception is not None
    assert isinstance(result.exception, SystemExit)


def test_without_a_workspace_the_cli_says_what_is_missing(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["--workspace", str(tmp_path), "models", "list"])
    assert result.exit_code == 2 and "parity.yaml" in result.output
    assert "Traceback" not in result.output


def test_an_empty_registry_says_how_to_register(root: Path) -> None:
    result = CliRunner().invoke(main, ["--workspace", str(root), "models", "list"])
    assert result.exit_code == 0 and "No models registered yet" in result.output


def test_a_corrupt_database_names_the_file_and_the_fix(root: Path) -> None:
    (root / "data").mkdir(exist_ok=True)
    database = root / "data" / "registry.db"
    database.write_bytes(b"this is not a database" * 100)
    for command in (["models", "list"], ["models", "show", "churn"], ["serve", "--port", "1"]):
        result = CliRunner().invoke(main, ["--workspace", str(root), *command])
        assert result.exit_code == 2, result.output
        text = " ".join(result.output.split())
        assert str(database) in text.replace(" ", "") or "registry.db" in text
        assert "damaged or is not a SQLite database" in text and "backup" in text
        assert "Traceback" not in result.output


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_an_unreadable_database_names_the_file(root: Path, registry: Registry) -> None:
    database = root / "data" / "registry.db"
    os.chmod(database, 0)
    try:
        result = CliRunner().invoke(main, ["--workspace", str(root), "models", "list"])
    finally:
        os.chmod(database, 0o644)
    assert result.exit_code == 2 and "registry.db" in result.output


def _verdict(registry: Registry, version: int, status: Any, decision: Any) -> None:
    """Store a verdict where the Sentinel keeps them, as `parity sentinel watch` would."""
    store = VerdictStore(Path(registry.artifacts.root).resolve().parent / "sentinel")
    finding = Finding("shadow_accuracy.worse", "AUC 0.61 vs live 0.74")
    result = CheckResult("shadow_accuracy", status, "AUC 0.61 vs live 0.74", [finding])
    moment = datetime(2024, 6, 1, tzinfo=timezone.utc)
    store.save(Verdict("churn", version, status, [result], moment, decision=decision))


def test_promoting_a_version_the_sentinel_stopped_needs_force(registry: Registry) -> None:
    _verdict(registry, 3, "fail", "stopped")
    refused = run(registry, "promote", "churn", "3")
    assert refused.exit_code == 2, refused.output
    text = " ".join(refused.output.split())
    assert "warning: the Sentinel stopped churn@3" in text and "--force" in text
    assert registry.get("churn", "live").version == 1  # not moved
    forced = run(registry, "promote", "churn", "3", "--force", "--reason", "new market")
    assert forced.exit_code == 0, forced.output
    assert "warning: the Sentinel stopped churn@3" in " ".join(forced.output.split())
    assert registry.get("churn", "live").version == 3
    assert "forced over the Sentinel" in (registry.alias_history("churn", "live")[-1].reason or "")
    _verdict(registry, 2, "pass", "promoted")
    assert run(registry, "promote", "churn", "2").exit_code == 0  # a passing verdict is no bar


def test_a_tampered_artifact_is_never_promoted(registry: Registry) -> None:
    from sklearn.linear_model import LinearRegression

    other = LinearRegression().fit(np.array([[0.0], [1.0]]), np.array([0.0, 3.0]))
    mv = registry.register("churn", other, feature_sets={}, code_dir="/")
    path = registry.artifacts.path_for(mv.artifact_sha256)
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    result = run(registry, "promote", "churn", str(mv.version))
    assert result.exit_code == 2 and "failed its integrity check" in result.output
    assert registry.get("churn", "live").version == 1
    verified = run(registry, "verify", "churn@live")
    assert verified.exit_code == 0 and "intact and signed" in verified.output


@pytest.mark.parametrize("command", ["list", "show", "promote", "rollback", "history", "verify"])
def test_every_command_help_explains_itself_with_an_example(command: str) -> None:
    result = CliRunner().invoke(models, [command, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output and f"parity models {command}" in result.output
