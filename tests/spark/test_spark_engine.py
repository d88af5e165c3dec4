"""The Spark engine beyond the case catalog: its join plan, Parquet output, options, refusals.

The catalog (``tests/catalog``) runs every case on the default plan (``sweep``) through the
``spark`` adapter; here a few cases that exercise corrections, ties, ttl, nulls and exact sums
also run on the ``join`` plan with hot keys split, through the same ``run_case``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

import parity as pt
from parity.errors import ConfigError, NotImplementedYetError
from tests.catalog.cases import CASES, build_log, context_frame, run_case
from tests.catalog.executors import SparkExecutor
from tests.conformance import PLAY_COLUMNS, at, catalog, frame, play, plays

pytestmark = pytest.mark.spark

JOIN_CASES = [
    "correction_moves_across_three_entities",
    "ties_in_event_time",
    "lookup_ttl_and_latest_event_time",
    "money_sums_are_bit_exact",
    "nulls_and_empty_windows",
    "arbitrary_floats_and_many_events",
]


@pytest.mark.parametrize("name", JOIN_CASES)
def test_join_plan_agrees_with_reference(spark: Any, name: str, tmp_path: Path) -> None:
    """Every function through the range join, with every key of two or more versions split
    into time buckets (hot) and the keys of one version not."""
    case = next(c for c in CASES if c.name == name)
    run_case(SparkExecutor("join", hot_key_versions=1), case, tmp_path)


def test_write_parquet_equals_the_collected_features(spark: Any, tmp_path: Path) -> None:
    from parity.contexts import normalize_contexts
    from parity.engines.spark import SparkEngine
    from parity.plan import plan_training_set

    case = next(c for c in CASES if c.name == "tombstone")
    log = build_log(tmp_path / "log", case)
    fs = [catalog()]
    contexts = normalize_contexts(context_frame(case), fs)
    plan = plan_training_set(fs, log, 10**18)
    engine = SparkEngine(session=spark)
    engine.write_parquet(contexts, plan, str(tmp_path / "out"))
    written = pq.read_table(tmp_path / "out").sort_by("row")
    collected = engine.training_set(context_frame(case), fs, log)
    assert written.column("row").to_pylist() == [0, 1, 2]
    assert written.column("plays_all").to_pylist() == collected.column("plays_all").to_pylist()
    assert written.column("plays_all").to_pylist() == [1, 1, 0]


def test_too_wide_exponent_ranges_are_refused_not_summed_inexactly(
    spark: Any, tmp_path: Path
) -> None:
    from parity.engines.spark import SparkEngine

    log = pt.FactLog(tmp_path / "log")
    log.ingest(plays, frame([play(1, 1, minutes=1e30), play(1, 2, minutes=1e-30)],
                            PLAY_COLUMNS))
    fs = pt.FeatureSet("f", plays.entity, [pt.Aggregate("s", plays, "sum", "minutes")])
    contexts = frame([at(1, 5)], ["member_id", "at"])
    with pytest.raises(NotImplementedYetError, match="'minutes' holds .* exponents span"):
        SparkEngine(session=spark).training_set(contexts, [fs], log)


def test_unknown_plan_is_a_config_error() -> None:
    from parity.engines.spark import SparkEngine

    with pytest.raises(ConfigError, match="plan must be one of sweep, join, not 'fast'"):
        SparkEngine(plan="fast")


def test_one_line_in_parity_yaml_switches_to_spark(tmp_path: Path) -> None:
    pytest.importorskip("pyspark")
    pt.init(tmp_path)
    config = tmp_path / "parity.yaml"
    text = config.read_text()
    config.write_text(text.replace("engine: duckdb ", "engine: spark  "))  # the one line
    engine = pt.open(tmp_path).engine
    assert engine.name == "spark" and engine.master == "local[*]"  # type: ignore[attr-defined]
    assert engine.conf["spark.driver.memory"] == "4g"  # type: ignore[attr-defined]
    config.write_text(text.replace("engine: duckdb ", "engine: spark  ").replace(
        "memory_limit: 4GB", "master: local[2]"))
    assert pt.open(tmp_path).engine.master == "local[2]"  # type: ignore[attr-defined]
