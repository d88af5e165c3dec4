"""Exact sums of doubles that can be stored, added, subtracted and rounded once.

Every finite double is an integer multiple of 2**-1074 (the smallest subnormal), so
``scaled(x) = x * 2**1074`` is an exact Python int and a sum of scaled values is the exact sum
of the doubles. A stored exact sum is a short list of doubles whose exact sum is that value
(``partials``: each the correctly rounded remainder of the previous ones, like the partials
``math.fsum`` keeps); ``math.fsum`` over any list of doubles is correctly rounded, so
``fsum(partials(a) + negated(partials(b)) + more)`` is the correctly rounded value of
``a - b + sum(more)``: bit for bit what ``math.fsum`` gives over the original values.

Non-finite values have no exact sum; callers check ``finite`` first and fall back.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

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
