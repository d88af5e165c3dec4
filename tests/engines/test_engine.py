"""Engine-level contracts outside the case catalog: choosing an engine, the correctly rounded
HUGEINT -> DOUBLE of exact sums, and the planning step's file pruning."""

from __future__ import annotations

import random
from pathlib import Path

import duckdb
import pytest

import parity as pt
from parity.engines import get_engine
from parity.engines.duckdb import DuckDBEngine, exact
from parity.errors import ConfigError, WorkspaceError
from parity.plan import plan_training_set
from parity.timeutil import datetime_to_us
from tests.conformance import PLAY_COLUMNS, catalog, frame, play, plays, ts


def test_spark_is_chosen_by_name_and_checks_its_options() -> None:
    pytest.importorskip("pyspark")  # the engine starts no JVM until it computes
    assert get_engine("spark", master="local[2]", conf={"a": "b"}).name == "spark"
    with pytest.raises(ConfigError, match="unknown offline setting.*threads"):
        get_engine("spark", threads=4)
    # parity.yaml's default memory_limit is the driver's memory, so switching is one line.
    engine = get_engine("spark", memory_limit="1GB")
    assert engine.conf["spark.driver.memory"] == "1g"  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="memory_limit 'lots' is not a size"):
        get_engine("spark", memory_limit="lots")


def test_unknown_engine_and_plan_are_config_errors() -> None:
    with pytest.raises(WorkspaceError, match="unknown engine 'polars'"):
        get_engine("polars")
    with pytest.raises(ConfigError, match="plan must be one of auto, sweep, join, not 'fast'"):
        DuckDBEngine(plan="fast")
    assert isinstance(get_engine("duckdb", plan="join"), DuckDBEngine)


def _hard_integers() -> list[int]:
    """Integers whose nearest double is hard to find: just below, at and above halfway
    between two doubles, at every magnitude up to 2**126, both signs."""
    rng = random.Random(7)
    out = [0, 1, -1, 2**53, 2**53 + 1, 2**126 - 1, 2**110 + 2**57 + 1, 2**64 + 2**11 + 1]
    for bits in range(54, 127):
        base = rng.getrandbits(bits) | (1 << (bits - 1))
        shift = bits - 53
        half = (base >> shift << shift) | (1 << (shift - 1))
        out += [half - 1, half, half + 1, base]
    return out + [-v for v in out]


def test_exact_double_is_correctly_rounded() -> None:
    values = _hard_integers()
    con = duckdb.connect()
    exact.install(con)
    con.execute("CREATE TABLE t (i INTEGER, s VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?, ?)", [(i, str(v)) for i, v in enumerate(values)])
    got = dict(con.execute("SELECT i, exact_double(s::HUGEINT) FROM t").fetchall())
    wrong = [(v, got[i], float(v)) for i, v in enumerate(values) if got[i] != float(v)]
    assert not wrong, wrong[:5]
    assert con.execute("SELECT exact_double(NULL::HUGEINT)").fetchone() == (None,)


def test_plan_prunes_files_on_recorded_at_only(tmp_path: Path) -> None:
    """Files whose every version was recorded at or after the cutoff (or the latest context)
    are not read; a file of future event times recorded early is."""
    log = pt.FactLog(tmp_path)
    log.ingest(plays, frame([play(1, 1)], PLAY_COLUMNS))
    log.ingest(plays, frame([{**play(1, 48), "recorded_at": ts(2)}], PLAY_COLUMNS))
    log.ingest(plays, frame([play(1, 10)], PLAY_COLUMNS))
    fs = catalog()
    everything = plan_training_set([fs], log, datetime_to_us(ts(20)))
    (plays_plan, profiles_plan) = everything.sources
    assert len(plays_plan.paths) == 3 and profiles_plan.paths == ()
    early = plan_training_set([fs], log, datetime_to_us(ts(20)), datetime_to_us(ts(5)))
    assert sorted(early.sources[0].paths) == sorted(log.paths(plays, datetime_to_us(ts(5))))
    assert len(early.sources[0].paths) == 2
    assert plan_training_set([fs], log, None).sources[0].paths == ()
