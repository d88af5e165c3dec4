"""Hot keys split into time buckets (``parity.engines.spark.buckets``): the grid reaches every
version a context's window can count. (That the plans agree with the oracle with keys split:
the catalog's ``spark`` executor splits keys above 4 versions, and ``test_spark_engine``
runs the join plan with every key of more than one version split.)"""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.spark

HOUR = 3_600_000_000


def test_a_hot_key_spreads_over_buckets_that_cover_every_window(spark: Any) -> None:
    from pyspark.sql import functions as F

    from parity.engines.spark import buckets

    # key 1: 200 versions over ~100 hours (hot above 10); key 2: 5 versions (not hot)
    times = [(1, i * HOUR // 2 + (i % 7) * 1_000) for i in range(200)]
    times += [(2, i * HOUR) for i in range(5)]
    v = spark.createDataFrame(times, "`#k0` bigint, `#et` bigint")
    hot = buckets.hot_keys(v, ["#k0"], 10)
    placed = buckets.bucketed_versions(v, hot, ["#k0"]).collect()
    bucket_of = {(r["#k0"], r["#et"]): r["#bucket"] for r in placed}
    assert {b for (k, _), b in bucket_of.items() if k == 2} == {0}
    hot_buckets = {b for (k, _), b in bucket_of.items() if k == 1}
    assert len(hot_buckets) >= 10 and min(hot_buckets) == 0
    sizes = [sum(1 for (k, _), b in bucket_of.items() if k == 1 and b == x) for x in hot_buckets]
    assert max(sizes) <= 2 * 10

    ats = [-HOUR, 0, 1, HOUR // 2, 7 * HOUR + 3, 50 * HOUR, 99 * HOUR + 999, 200 * HOUR]
    for window in (None, 1, HOUR, 5 * HOUR, 24 * HOUR, 1_000 * HOUR):
        ctx = spark.createDataFrame(
            [(row, key, t) for row, (key, t) in enumerate((k, t) for k in (1, 2) for t in ats)],
            "`#row` bigint, `#k0` bigint, `#t` bigint",
        )
        reached: dict[int, set[int]] = {}
        keyed: dict[int, tuple[int, int]] = {}
        for r in buckets.bucketed_contexts(ctx, hot, ["#k0"], window).collect():
            reached.setdefault(r["#row"], set()).add(r["#bucket"])
            keyed[r["#row"]] = (r["#k0"], r["#t"])
        assert sorted(reached) == list(range(2 * len(ats)))  # no context is lost
        for row, (key, t) in keyed.items():
            needed = {
                b for (k, et), b in bucket_of.items()
                if k == key and et < t and (window is None or et >= t - window)
            }
            assert needed <= reached[row], (key, t, window)
            if key == 1 and window is not None and window <= HOUR:
                assert len(reached[row]) <= 3  # a short window reaches few buckets
    assert hot.select(F.max("#b_width")).first()[0] >= 1


def test_hot_key_versions_must_be_a_positive_whole_number() -> None:
    from parity.engines.spark import SparkEngine
    from parity.errors import ConfigError

    for bad in (0, -3, 2.5, "100", True):
        with pytest.raises(ConfigError, match="hot_key_versions must be a whole number >= 1"):
            SparkEngine(hot_key_versions=bad)  # type: ignore[arg-type]
