"""Exact float sums in Spark: correctly rounded, as ``math.fsum`` (bit for bit)."""

from __future__ import annotations

import math
from typing import Any

import pytest

pytestmark = pytest.mark.spark

CASES = {
    # scaled by 2**77, 1e10 is a ~110-bit integer: its shortest decimal text is not exact
    "wide": [1e10, 0.1, -1e10, 3.3333333, 1e-7, -2.5e-3, 7.77],
    "negatives": [-0.1, 0.3, -0.7, 1e-3],
    # 2**53 + 1 is a tie: round half to even gives 2**53; a tiny extra tips it up
    "tie_to_even": [2.0**53, 1.0],
    "tie_tipped": [2.0**53, 1.0, 2.0**-8],
    # a cancellation leaves the low bits of a ~110-bit scaled integer: a plain cast loses them
    "cancelling": [2.0**33 + 2.0**-19, -(2.0**33), 1e-7],
    "money": [round(0.01 * i * 7919 % 10_000, 2) for i in range(1, 400)],
}


def _exact_sum(spark: Any, values: list[float], naive: bool = False) -> float:
    from pyspark.sql import functions as F

    from parity.engines.spark import exact

    frame = spark.createDataFrame([(v,) for v in values], "x double")
    low, high, count, non_finite = frame.agg(*exact.scale_stats(F.col("x"))).first()
    scale = exact.exact_scale(low, high, count, non_finite)
    assert scale is not None
    if naive:  # what a plain cast does: through the double's shortest decimal text
        scaled = (F.col("x") * F.lit(math.ldexp(1.0, scale))).cast(exact.EXACT)
    else:
        scaled = exact.to_exact(F.col("x"), scale)
    result = frame.agg(exact.to_double(F.sum(scaled), scale).alias("s")).first()
    assert result is not None
    return float(result["s"])


@pytest.mark.parametrize("name", sorted(CASES))
def test_exact_sum_is_correctly_rounded(spark: Any, name: str) -> None:
    values = CASES[name]
    assert _exact_sum(spark, values).hex() == math.fsum(values).hex()


def test_a_plain_decimal_cast_is_not_exact(spark: Any) -> None:
    """Why ``to_exact`` splits the value: the test above fails with a plain cast."""
    values = CASES["cancelling"]
    assert _exact_sum(spark, values, naive=True) != math.fsum(values)


def test_scale_refuses_non_finite_and_too_wide_ranges() -> None:
    from parity.engines.spark.exact import exact_scale

    assert exact_scale(None, None, 0, 1) is None
    assert exact_scale(-1000, 1000, 10, 0) is None
    assert exact_scale(None, None, 3, 0) == 0  # only zeros
    assert exact_scale(-3, 14, 600, 0) == 52 + 3 + 1
