"""Correctly rounded HUGEINT -> DOUBLE in DuckDB SQL.

DuckDB converts a 128-bit integer to a double in two roundings, which can be one unit in the
last place off. parity's float sums are exact 128-bit integers, and the promise is that every
path returns the *correctly rounded* sum (what ``math.fsum`` returns online and in the
reference): a one-ulp difference is enough to flip a tree model's split. These macros take
DuckDB's faithful cast ``y``, compute the exact integer residual ``a - y``, and step one ulp
when the residual is more than half an ulp (ties to even).
"""

from __future__ import annotations

from typing import Any

MACROS = [
    # The binade exponent of a positive double, robust to log2 rounding near powers of two.
    """CREATE OR REPLACE MACRO _parity_exp(y) AS (
        CASE WHEN pow(2.0, floor(log2(y))) > y THEN floor(log2(y)) - 1
             WHEN pow(2.0, floor(log2(y)) + 1) <= y THEN floor(log2(y)) + 1
             ELSE floor(log2(y)) END)""",
    """CREATE OR REPLACE MACRO _parity_odd(y, u) AS ((y / u)::HUGEINT % 2 = 1)""",
    """CREATE OR REPLACE MACRO _parity_down(y, r, d, u) AS (
        CASE WHEN 2 * r > d::HUGEINT OR (2 * r = d::HUGEINT AND _parity_odd(y, u))
             THEN y - d ELSE y END)""",
    """CREATE OR REPLACE MACRO _parity_fix2(y, r, u, at_pow) AS (
        CASE WHEN r = 0 THEN y
             WHEN r > 0 THEN
                 CASE WHEN 2 * r > u::HUGEINT OR (2 * r = u::HUGEINT AND _parity_odd(y, u))
                      THEN y + u ELSE y END
             ELSE _parity_down(y, -r, CASE WHEN at_pow THEN u / 2 ELSE u END, u) END)""",
    """CREATE OR REPLACE MACRO _parity_fix(a, y, e) AS (
        _parity_fix2(y, a - y::HUGEINT, pow(2.0, e - 52), y = pow(2.0, e)))""",
    """CREATE OR REPLACE MACRO _parity_mag(a) AS (
        CASE WHEN a < 9007199254740992::HUGEINT THEN a::DOUBLE
             ELSE _parity_fix(a, a::DOUBLE, _parity_exp(a::DOUBLE)) END)""",
    """CREATE OR REPLACE MACRO exact_double(h) AS (
        CASE WHEN h IS NULL THEN NULL WHEN h < 0 THEN -_parity_mag(-h) ELSE _parity_mag(h) END)""",
]


def install(con: Any) -> None:
    """Define ``exact_double(hugeint) -> double`` (correctly rounded) on a connection."""
    for statement in MACROS:
        con.execute(statement)
