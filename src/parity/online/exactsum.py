"""Exact sums of doubles that can be stored, added, subtracted and rounded once.

Every finite double is an integer multiple of 2**-1074 (the smallest subnormal), so
``scaled(x) = x * 2**1074`` is an exact Python int and a sum of scaled values is the exact sum
of the doubles. A stored exact sum is a short list of doubles whose exact sum is that value
(``partials``: each the correctly rounded remainder of the previous ones, like the partials
``math.fsum`` keeps); ``math.fsum`` over any list of doubles is correctly rounded, so
``fsum(partials(a) + negated(partials(b)) + more)`` is the correctly rounded value of
``a - b + sum(more)``: bit for bit what ``math.fsum`` gives over the original values.

Non-finite values have no exact sum; callers check ``finite`` first and fall back.

``prefix_rows`` computes many prefix sums at once in numpy, without a Python int per value:
each double is split (``np.frexp``) into a signed 53-bit integer mantissa and a power of two,
the mantissas are cut into 32-bit limbs aligned on the smallest power present, and each limb
is summed in int64 (exact while fewer than 2**21 values). A prefix is then stored as one
double per limb, ``limb_sum * 2**(32 k + base - 1074)``: each is exact (a 53-bit integer
times a power of two), so the row's exact sum is the prefix, as with ``partials``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

_SCALE_BITS = 1074
_SCALE = 1 << _SCALE_BITS


def finite(value: float) -> bool:
    """Whether ``value`` can take part in an exact sum (not inf/nan, and not -0.0).

    -0.0 is refused because its sign is lost in an exact sum and min/max could then pick
    the other zero; a field holding it is served from raw facts.
    """
    return math.isfinite(value) and not (value == 0.0 and math.copysign(1.0, value) < 0)


def scaled(value: float) -> int:
    """``value * 2**1074`` as an exact int (``value`` finite)."""
    numerator, denominator = value.as_integer_ratio()
    return numerator << (_SCALE_BITS + 1 - denominator.bit_length())


def total(values: Iterable[float]) -> int:
    """The exact scaled sum of finite doubles."""
    return sum(scaled(v) for v in values)


def partials(exact: int) -> list[float]:
    """Doubles whose exact sum is ``exact / 2**1074``; OverflowError if it exceeds a double."""
    out: list[float] = []
    while exact:
        head = exact / _SCALE  # int true division: correctly rounded
        out.append(head)
        exact -= scaled(head)
    return out


def from_partials(row: Iterable[float]) -> int:
    """The exact scaled value of a list of doubles (inverse of ``partials``)."""
    return sum(scaled(v) for v in row if v)


_LIMB = 32
_INT_LIMIT = float(1 << 53)
_MAX_VALUES = 1 << 21  # limb sums of at most 2**21 values of < 2**32 stay below 2**53


def prefix_rows(values: np.ndarray, cuts: np.ndarray) -> np.ndarray | None:
    """Exact prefix sums of the float64 ``values`` at each of ``cuts`` (non-decreasing counts
    of leading values), one row of doubles per cut whose exact sum is the prefix sum.

    None when a value has no exact sum (inf, nan, -0.0; see ``finite``) or a row's doubles
    overflow (the caller then serves raw facts). Rows are zero-padded to one width.
    """
    values = np.asarray(values, np.float64)
    cuts = np.asarray(cuts, np.int64)
    if not np.isfinite(values).all() or np.signbit(values[values == 0]).any():
        return None
    if len(values) >= _MAX_VALUES:  # limb sums could pass 2**53: Python ints instead
        return _rows_by_ints(values, cuts)
    whole = _integral_rows(values, cuts)
    if whole is not None:
        return whole
    fraction, exponent = np.frexp(values)
    mantissa = (fraction * float(1 << 53)).astype(np.int64)  # exact: |mantissa| < 2**53
    shift = exponent.astype(np.int64) + (_SCALE_BITS - 53)  # scaled(v) = mantissa << shift
    low = shift < 0  # subnormals: the mantissa's low bits are zeros, shift them out
    if low.any():
        mantissa[low] >>= -shift[low]
        shift[low] = 0
    nonzero = mantissa != 0
    if not nonzero.any():
        return np.zeros((len(cuts), 0), np.float64)
    # Align on the lowest set bit present, so integers and short decimals need few limbs.
    magnitude = np.abs(mantissa).astype(np.uint64)
    lowest = shift + _trailing_zeros(magnitude)
    base = int(lowest[nonzero].min())
    top = int((shift + 53)[nonzero].max())
    offset = np.where(nonzero, shift - base, 0)[None, :]
    limbs = (top - base + _LIMB - 1) // _LIMB
    down = _LIMB * np.arange(limbs, dtype=np.int64)[:, None] - offset  # limb k: >> 32 k
    mask = np.uint64((1 << _LIMB) - 1)
    parts = (
        np.where(
            down >= 0,
            magnitude >> np.minimum(down, 63).astype(np.uint64),
            magnitude << np.minimum(-down, 63).astype(np.uint64),
        )
        & mask
    )
    signed = parts.astype(np.int64)
    np.negative(signed, out=signed, where=(mantissa < 0)[None, :])
    sums = np.cumsum(signed, axis=1)
    columns = np.zeros((limbs, len(cuts)), np.int64)
    inside = cuts > 0
    columns[:, inside] = sums[:, cuts[inside] - 1]
    used = columns.any(axis=1)
    scale = _LIMB * np.arange(limbs)[used] + (base - _SCALE_BITS)
    with np.errstate(over="ignore"):
        rows = np.ldexp(columns[used].astype(np.float64), scale[:, None])
    if not np.isfinite(rows).all():
        return None
    return np.ascontiguousarray(rows.T)


def _integral_rows(values: np.ndarray, cuts: np.ndarray) -> np.ndarray | None:
    """``prefix_rows`` when every value is an integer below 2**53 in magnitude and the
    prefixes stay below 2**62 (counts, quantities): an int64 cumsum is exact, and each
    prefix is two doubles, its rounding and the (exact) remainder. None otherwise."""
    if len(values) and not (np.abs(values).max() < _INT_LIMIT):
        return None
    whole = values.astype(np.int64)
    largest = float(np.abs(values).max()) if len(values) else 0.0
    if not np.array_equal(whole, values) or largest * len(values) >= 2.0**62:
        return None
    running = np.zeros(len(values) + 1, np.int64)
    np.cumsum(whole, out=running[1:])
    exact = running[cuts]
    head = exact.astype(np.float64)
    rest = (exact - head.astype(np.int64)).astype(np.float64)  # |rest| <= 2**9: exact
    rows = np.stack([head, rest], axis=1)
    return rows[:, rows.any(axis=0)]


def _trailing_zeros(magnitude: np.ndarray) -> np.ndarray:
    """Trailing zero bits of each (nonzero) uint64; 0 for zero."""
    lowest = magnitude & (~magnitude + np.uint64(1))  # the lowest set bit alone
    return np.where(magnitude == 0, 0, np.log2(np.maximum(lowest, 1).astype(np.float64))).astype(
        np.int64
    )


def _rows_by_ints(values: np.ndarray, cuts: np.ndarray) -> np.ndarray | None:
    """``prefix_rows`` with Python ints (very long inputs): ``partials`` per cut."""
    rows: list[list[float]] = []
    running, start = 0, 0
    listed = values.tolist()
    try:
        for cut in cuts.tolist():
            running += total(listed[start:cut])
            rows.append(partials(running))
            start = cut
    except OverflowError:
        return None
    width = max((len(r) for r in rows), default=0)
    out = np.zeros((len(rows), width), np.float64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out
