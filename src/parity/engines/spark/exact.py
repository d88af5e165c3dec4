"""Exact float sums in Spark SQL, without Python UDFs.

parity's promise is that a float sum is the *correctly rounded* exact sum (``math.fsum``) on
every path. The DuckDB engine multiplies each value by ``2**scale`` so that it becomes an
integer and adds those integers as HUGEINT; Spark has no 128-bit integer, but ``decimal(38,0)``
holds every integer below ``10**38 > 2**126``, which is the bound ``exact_scale`` keeps to.

Getting a double's exact integer into a decimal needs care: Spark casts a double to a decimal
through its shortest decimal *text* (``Double.toString``), which is not the exact value of an
integer above ``2**53``. So the magnitude ``|I|`` of the scaled value (an integer-valued
double) is split into ``hi = floor(|I| / 2**63)`` and ``lo = |I| - hi * 2**63``. Both steps
are exact in binary floating point (a division by a power of two, the floor of an integer, a
difference that keeps a subset of ``|I|``'s mantissa bits); both fit a ``bigint``, and a
``bigint`` casts to a decimal exactly. The decimal is then ``±(hi * 2**63 + lo)``.

Back to a double: Spark's decimal -> double cast goes through ``java.math.BigDecimal
.doubleValue``, which for a scale-0 decimal either converts a ``long`` (correctly rounded) or
parses the decimal text (correctly rounded, round half to even). The division by ``2**scale``
is exact for results in the normal range.
"""

from __future__ import annotations

import math

from pyspark.sql import Column
from pyspark.sql import functions as F

EXACT = "decimal(38,0)"
_TWO_63 = 2.0**63


def exact_scale(low: int | None, high: int | None, count: int, non_finite: int) -> int | None:
    """The power of two that makes every value an integer within 126 bits, or None.

    ``low``/``high`` bound the binary exponents of the non-zero finite values (from
    ``floor(log2|x|)`` and ``ceil(log2|x|)``, which Spark computes in floating point and can
    miss by one near a power of two, so one bit of margin is taken on each side).
    """
    if non_finite:
        return None
    if low is None or high is None:
        return 0
    scale = 52 - (low - 1)
    bits = (high + 1) + scale + max(count, 1).bit_length() + 2
    return scale if bits <= 126 else None


def scale_stats(value: Column) -> list[Column]:
    """Aggregates giving ``exact_scale``'s inputs for a float column."""
    finite = value.isNotNull() & ~F.isnan(value) & (F.abs(value) != float("inf"))
    nonzero = finite & (value != 0)
    log = F.log2(F.abs(value))
    return [
        F.min(F.when(nonzero, F.floor(log))).cast("int"),
        F.max(F.when(nonzero, F.ceil(log))).cast("int"),
        F.count(value),
        F.count(F.when(value.isNotNull() & ~finite, 1)),
    ]


def to_exact(value: Column, scale: int) -> Column:
    """``value * 2**scale`` as an exact ``decimal(38,0)`` (null stays null)."""
    magnitude = F.abs(value) * F.lit(math.ldexp(1.0, min(scale, 1023)))
    if scale > 1023:
        magnitude = magnitude * F.lit(math.ldexp(1.0, scale - 1023))
    # on the magnitude, the low part keeps a subset of its mantissa bits: exact (not so for a
    # negative value, whose floor would borrow from 2**63)
    hi = F.floor(magnitude / F.lit(_TWO_63))
    lo = magnitude - hi.cast("double") * F.lit(_TWO_63)
    exact = hi.cast(EXACT) * F.lit(str(2**63)).cast(EXACT) + lo.cast("bigint").cast(EXACT)
    return F.when(value < 0, -exact).otherwise(exact).cast(EXACT)


def to_double(total: Column, scale: int) -> Column:
    """The correctly rounded double of an exact ``decimal(38,0)`` sum divided by ``2**scale``."""
    rounded = total.cast("double")
    if scale <= 1022:
        return rounded * F.lit(math.ldexp(1.0, -scale))
    return rounded * F.lit(math.ldexp(1.0, -1022)) * F.lit(math.ldexp(1.0, 1022 - scale))
