"""The sentinel wired to a real workspace: fact log freshness, the feature log joined with
labels as shadow traffic, training rows from the version's lineage, the CLI."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import parity
from parity.cli.app import main
from parity.cli.sentinel import sentinel as sentinel_cli
from parity.featurelog import FeatureLogRecord, FeatureLogWriter
from parity.sentinel import Sentinel, WorkspaceInputs
from tests.sentinel import models, world
from tests.sentinel.helpers import TEST_CONFIG, Tables

FEATURES_PY = """\
from tests.sentinel.world import conversions, member, member_features, plays, profiles
"""


def _workspace(root: Path, tables: Tables, sentinel_yaml: dict[str, Any]) -> Any:
    parity.init(root, name="sentinel-test")
    (root / "features.py").write_text(FEATURES_PY)
    config = (root / "parity.yaml").read_text()
    config += "online: memory\nregistry: {allow_pickle: true}\nsentinel: " + json.dumps({"conv": sentinel_yaml}) + "\n"
    (root / "parity.yaml").write_text(config)
    ws = parity.open(root)
    traffic = world.rows(4_000, seed=21, members=10**9, start=world.NOW - timedelta(days=4))
    recent = world.NOW - timedelta(minutes=10)
    n = traffic.num_rows
    ws.ingest("plays", pa.table({
        "member": traffic.column("member"), "minutes": traffic.column("minutes_7d"),
        "event_time": traffic.column("at"),
        "recorded_at": pa.array([recent] * n, pa.timestamp("us", tz="UTC"))}))
    ws.ingest("profiles", pa.table({
        "member": traffic.column("member"), "country": traffic.column("country"),
        "age": traffic.column("age"), "event_time": traffic.column("at"),
        "recorded_at": pa.array([recent] * n, pa.timestamp("us", tz="UTC"))}))
    converted = traffic.filter(pa.compute.equal(traffic.column("label"), 1))
    hour = pa.scalar(timedelta(hours=1), pa.duration("us"))
    ws.ingest("conversions", pa.table({
        "member": pa.concat_arrays([converted.column("member").combine_chunks(),
                                    pa.array([-1], pa.int64())]),
        "value": pa.array([1.0] * (converted.num_rows + 1)),
        # one conversion an hour ago marks the labels complete up to then
        "event_time": pa.concat_arrays([
            pa.compute.add(converted.column("at"), hour).combine_chunks(),
            pa.array([world.NOW - timedelta(hours=1)], pa.timestamp("us", tz="UTC"))]),
    }), recorded_at="now")
    ws.online.materialize()  # the online store serves (and reports fresh) what it applied
    writer = FeatureLogWriter(ws.feature_log_dir, on_full="block")
    for i, row in enumerate(traffic.to_pylist()):
        writer.log(FeatureLogRecord(
            request_id=f"r{i}", logged_at=row["at"], model="conv", model_version=1,
            feature_set_versions={"member_features": world.member_features.version},
            keys={"member": row["member"]},
            features={f: row[f] for f in world.FEATURES}, output=0.5))
    writer.close()
    pq.write_table(tables.train, root / "train.parquet")
    ws.registry.register("conv", tables.live, feature_sets=[world.member_features])
    ws.registry.set_alias("conv", "live", 1)
    return ws, traffic


def _config(**overrides: Any) -> dict[str, Any]:
    config = {k: dict(v) for k, v in TEST_CONFIG.items()}
    config["labels"] = {"source": "conversions", "window": "1d"}
    config["dependent_data"] = {"max_age": {"plays": "1h"}, "default_max_age": "1d"}
    config.update(overrides)
    return config


def test_workspace_inputs_feed_the_checks(tmp_path: Path, tables: Tables) -> None:
    ws, traffic = _workspace(tmp_path / "ws", tables, _config())
    version = ws.registry.register("conv", tables.good, feature_sets=[world.member_features],
                                   training_set={"path": "train.parquet"}).version
    sentinel = Sentinel(ws.registry, WorkspaceInputs(ws), config=ws.config["sentinel"],
                        clock=lambda: world.NOW)
    verdict = sentinel.check("conv", version)
    assert verdict.status == "pass", [(r.check, r.status, r.reason) for r in verdict.results]
    shadow = verdict.result("shadow_accuracy").evidence
    assert 3_000 < shadow["rows"] <= traffic.num_rows  # labelled rows of the feature log
    rate = verdict.result("calibration").evidence["candidate"]["observed_rate"]
    expected = pa.compute.mean(traffic.column("label")).as_py()
    assert rate == pytest.approx(expected, abs=0.03)  # labels came from the conversions
    data = verdict.result("dependent_data").evidence["sources"]
    assert {s["source"] for s in data} == {"plays", "profiles"}
    assert verdict.result("drift").evidence["rows_training"] == tables.train.num_rows
    assert Path(verdict.paths["report"]).parent == tmp_path / "ws" / "data" / "sentinel" / \
        "conv" / str(version)


def test_stale_fact_log_stops_the_candidate(tmp_path: Path, tables: Tables) -> None:
    ws, _ = _workspace(tmp_path / "ws", tables, _config())
    version = ws.registry.register("conv", tables.good, feature_sets=[world.member_features],
                                   training_set={"path": "train.parquet"}).version
    later = world.NOW + timedelta(hours=3)  # nothing recorded for three hours
    verdict = Sentinel(ws.registry, WorkspaceInputs(ws), config=ws.config["sentinel"],
                       clock=lambda: later).check("conv", version)
    result = verdict.result("dependent_data")
    assert result.codes == {"dependent_data.stale"}
    assert "'plays'" in result.reason


def test_cli_check_watch_report_rollback(tmp_path: Path, tables: Tables) -> None:
    # The CLI uses the real clock: drop the shadow window and relax freshness for 2024 data.
    ws, _ = _workspace(tmp_path / "ws", tables, _config(
        shadow_accuracy={**TEST_CONFIG["shadow_accuracy"], "window": None},
        dependent_data={"default_max_age": "100000d"}))
    good = ws.registry.register("conv", tables.good, feature_sets=[world.member_features],
                                training_set={"path": "train.parquet"}).version
    bad = ws.registry.register(
        "conv", world.wrap(tables.good, models.Noisy(tables.good.model, 1.5)),
        feature_sets=[world.member_features], training_set={"path": "train.parquet"}).version
    obj = SimpleNamespace(workspace=ws)
    runner = CliRunner()

    result = runner.invoke(sentinel_cli, ["check", f"conv@{bad}"], obj=obj)
    assert result.exit_code == 1, result.output
    assert f"conv@{bad} FAILED" in result.output and "shadow_accuracy" in result.output

    ws.registry.set_alias("conv", "candidate", good)
    result = runner.invoke(sentinel_cli, ["watch", "conv", "--once"], obj=obj)
    assert result.exit_code == 0, result.output
    assert ws.registry.aliases("conv")["live"] == good

    out = tmp_path / "report.html"
    result = runner.invoke(sentinel_cli, ["report", f"conv@{bad}", "-o", str(out)], obj=obj)
    assert result.exit_code == 0, result.output
    assert "shadow_accuracy.inferior" in out.read_text()

    result = runner.invoke(sentinel_cli, ["rollback", "conv"], obj=obj)
    assert result.exit_code == 0, result.output
    assert f"live {good} -> 1" in result.output
    assert ws.registry.aliases("conv")["live"] == 1

    # Errors are the root group's to show (one line, exit 2), not this module's.
    result = runner.invoke(main, ["-w", str(tmp_path / "ws"), "sentinel", "check", "nope@1"])
    assert result.exit_code == 2 and "no model named 'nope'" in result.output, result.output


def test_missing_label_source_is_named_as_the_cause(tmp_path: Path, tables: Tables) -> None:
    config = _config()
    del config["labels"]
    ws, traffic = _workspace(tmp_path / "ws", tables, config)
    version = ws.registry.register("conv", tables.good, feature_sets=[world.member_features],
                                   training_set={"path": "train.parquet"}).version
    verdict = Sentinel(ws.registry, WorkspaceInputs(ws), config=ws.config["sentinel"],
                       clock=lambda: world.NOW).check("conv", version)
    shadow = verdict.result("shadow_accuracy")
    assert shadow.status == "not_enough_data"
    assert "no label source configured" in shadow.reason and "labels.source" in shadow.reason
    assert f"{traffic.num_rows} predictions" in shadow.reason
    assert "feature log is empty" not in verdict.to_json()
    # Drift needs no labels: it judged the logged traffic.
    assert verdict.result("drift").evidence["rows_live"] == traffic.num_rows
