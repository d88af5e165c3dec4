"""Correctly rounded HUGEINT -> DOUBLE in DuckDB SQL.

parity's float sums are exact 128-bit integers, and the promise is that every path returns the
*correctly rounded* sum (what ``math.fsum`` returns online and in the reference): a one-ulp
difference is enough to flip a tree model's split. DuckDB's own HUGEINT -> DOUBLE cast has been
computed in two roundings in some versions, which can be one unit in the last place off.

So the macro checks the cast: ``y = h::DOUBLE`` is the nearest double when the exact residual
``h - y`` is less than half the gap to the neighbouring double on either side (``nextafter``);
then there is no tie and nothing nearer. Otherwise (a tie, or a cast one ulp off: rare) it goes
through the exact decimal text of the integer, which DuckDB parses with a correctly rounded
parser (round half to even). Integers of at most 53 bits are exact doubles. The macro is one
flat CASE: it costs about a millisecond to bind (an earlier version built the rounding from
nested macros whose expansion cost ~0.1-0.2 s per use) and a few operations per row.
"""

from __future__ import annotations

from typing import Any

_EXACT = 9007199254740992  # 2**53: every integer up to it is a double

MACROS = [
    f"""CREATE OR REPLACE MACRO exact_double(h) AS (
        CASE WHEN h BETWEEN -{_EXACT} AND {_EXACT} THEN h::DOUBLE
             WHEN 2 * abs(h - h::DOUBLE::HUGEINT) < least(
                      nextafter(abs(h::DOUBLE), 'inf'::DOUBLE) - abs(h::DOUBLE),
                      abs(h::DOUBLE) - nextafter(abs(h::DOUBLE), 0.0))::HUGEINT
                  THEN h::DOUBLE
             ELSE h::VARCHAR::DOUBLE END)""",
]


def install(con: Any) -> None:
    """Define ``exact_double(hugeint) -> double`` (correctly rounded) on a connection."""
    for statement in MACROS:
        con.execute(statement)
