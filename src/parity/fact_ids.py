"""Content-derived fact ids, computed without pandas for small batches.

A fact id that the data does not give is a content hash (see ``parity.facts.normalize_facts``).
Stored fact logs hold ids that were computed with ``pandas.util.hash_pandas_object`` over the
frame that ``pyarrow.Table.to_pandas`` makes of the hashed columns, so that function defines the
ids. This module reproduces it bit for bit in plain Python, because building a pandas frame costs
milliseconds per call, far more than a one-fact push may spend. Large batches keep the pandas path
(``pandas_fact_ids``), whose C loops are faster there. ``tests/core/test_fact_ids.py`` checks the
two against a frozen copy of the original implementation on generated data.

How pandas hashes one column (pandas 3.1, ``pandas/core/util/hashing.py``), per parity dtype, as
``to_pandas`` presents it:

- ``int`` without nulls: int64, the two's-complement bits, then ``_mix``. With a null anywhere in
  the batch the column arrives as float64 (null -> NaN), hashed as ``float``. So an int field's
  hash depends on whether the batch holds a null in that column; the ids on disk do, so this does.
- ``float``: the IEEE bits, with every NaN (null) as the canonical quiet NaN and -0.0 as 0.0,
  then ``_mix``.
- ``bool`` without nulls: 0 or 1, then ``_mix``. With a null the column is an object array:
  ``_mix(siphash("True"/"False"))`` and null -> 2**64 - 1 (not mixed: a categorical's missing code).
- ``str``: ``_mix(siphash(utf-8 bytes))``, null -> 2**64 - 1.
- ``timestamp``: epoch microseconds (NaT = -2**63), then ``_mix``.
- nested (``list<...>``, ``struct<...>``): pandas cannot hash lists and dicts, so parity
  defines it: the value's canonical JSON text (``parity.dtypes.encode_nested``: struct fields
  in declared order, timestamps as epoch microseconds, floats as shortest round-trip text;
  ``encode_column`` for a whole column) is
  hashed as a ``str`` value, null -> 2**64 - 1. Both paths replace the column by those texts
  before hashing (``_texts_for_nested``), so they agree by construction.

Columns combine like CPython's tuple hash (``_combine``). Event sources then hash the pair
(row hash, occurrence of that row hash earlier in the batch) the same way.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import pyarrow as pa

from parity.dtypes import ARROW_TYPES, encode_column, is_nested
from parity.errors import DefinitionError

M64 = 0xFFFF_FFFF_FFFF_FFFF
NULL_CODE = M64  # pandas' hash of a missing categorical value
_NAN_BITS = 0x7FF8_0000_0000_0000  # np.array(np.nan).view("u8")
_NAT = 1 << 63  # NaT is int64 min; as uint64 that is 2**63
_KEY = b"0123456789123456"  # pandas' default hash_key
_K0 = int.from_bytes(_KEY[:8], "little")
_K1 = int.from_bytes(_KEY[8:], "little")
_DOUBLE = struct.Struct("<d")

# Batches up to this many rows take the plain-Python path; larger ones go through pandas,
# whose C hashing wins once the frame's fixed cost is shared by enough rows (~150 rows of
# unseen strings, measured).
SMALL_BATCH = 128


def _mix(x: int) -> int:
    """pandas' final avalanche of a uint64 (the splitmix64 finaliser)."""
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & M64
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def siphash24(data: bytes, k0: int = _K0, k1: int = _K1) -> int:
    """SipHash-2-4 of ``data`` with the 128-bit key (k0, k1); what pandas hashes strings with."""
    v0 = k0 ^ 0x736F6D6570736575
    v1 = k1 ^ 0x646F72616E646F6D
    v2 = k0 ^ 0x6C7967656E657261
    v3 = k1 ^ 0x7465646279746573
    n = len(data)
    tail = n - n % 8
    blocks = [int.from_bytes(data[i : i + 8], "little") for i in range(0, tail, 8)]
    blocks.append(((n & 0xFF) << 56) | int.from_bytes(data[tail:], "little"))
    for m in blocks:
        v3 ^= m
        for _ in range(2):
            v0 = (v0 + v1) & M64
            v1 = ((v1 << 13) | (v1 >> 51)) & M64 ^ v0
            v0 = ((v0 << 32) | (v0 >> 32)) & M64
            v2 = (v2 + v3) & M64
            v3 = ((v3 << 16) | (v3 >> 48)) & M64 ^ v2
            v0 = (v0 + v3) & M64
            v3 = ((v3 << 21) | (v3 >> 43)) & M64 ^ v0
            v2 = (v2 + v1) & M64
            v1 = ((v1 << 17) | (v1 >> 47)) & M64 ^ v2
            v2 = ((v2 << 32) | (v2 >> 32)) & M64
        v0 ^= m
    v2 ^= 0xFF
    for _ in range(4):
        v0 = (v0 + v1) & M64
        v1 = ((v1 << 13) | (v1 >> 51)) & M64 ^ v0
        v0 = ((v0 << 32) | (v0 >> 32)) & M64
        v2 = (v2 + v3) & M64
        v3 = ((v3 << 16) | (v3 >> 48)) & M64 ^ v2
        v0 = (v0 + v3) & M64
        v3 = ((v3 << 21) | (v3 >> 43)) & M64 ^ v0
        v2 = (v2 + v1) & M64
        v1 = ((v1 << 17) | (v1 >> 47)) & M64 ^ v2
        v2 = ((v2 << 32) | (v2 >> 32)) & M64
    return v0 ^ v1 ^ v2 ^ v3


@lru_cache(maxsize=8192)  # entity keys and categorical fields repeat across pushes
def _str_hash(value: str) -> int:
    return _mix(siphash24(value.encode("utf-8")))


_NAT_HASH = _mix(_NAT)


def _float_hash(value: float | None) -> int:
    if value is None or value != value:  # null or NaN: pandas canonicalises every NaN
        return _mix(_NAN_BITS)
    if value == 0.0:  # -0.0 hashes like 0.0
        return 0  # _mix(0) == 0
    return _mix(int.from_bytes(_DOUBLE.pack(value), "little"))


def _int_hash(value: int) -> int:
    return _mix(value & M64)


def _column_hashes(dtype: str, column: pa.ChunkedArray | pa.Array) -> list[int]:
    """The pandas hash of every value of one canonical column (see the module docstring)."""
    has_nulls = column.null_count > 0
    if dtype == "timestamp":
        # a zero-copy view of the epoch microseconds: a cast is a compute call, ~4x dearer
        chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
        micros = [v for chunk in chunks for v in chunk.view(pa.int64()).to_pylist()]
        return [_NAT_HASH if v is None else _int_hash(v) for v in micros]
    values: list[Any] = column.to_pylist()
    if dtype == "int":
        if has_nulls:  # to_pandas gives float64 with NaN
            return [_float_hash(None if v is None else float(v)) for v in values]
        return [_int_hash(v) for v in values]
    if dtype == "float":
        return [_float_hash(v) for v in values]
    if dtype == "str":
        return [NULL_CODE if v is None else _str_hash(v) for v in values]
    if dtype == "bool":
        if has_nulls:  # an object array: hashed as the strings "True" / "False"
            return [NULL_CODE if v is None else _str_hash(str(v)) for v in values]
        return [_mix(int(v)) for v in values]
    # unreachable through definitions (parity.dtypes validates dtypes when a source is made)
    raise DefinitionError(
        f"fact ids: no hashing rule for dtype {dtype!r}; declare one of {', '.join(ARROW_TYPES)}"
    )


def _combine(rows: Sequence[Sequence[int]]) -> list[int]:
    """pandas' ``combine_hash_arrays`` (CPython's old tuple hash), row by row."""
    num_items = len(rows[0]) if rows else 0
    out = []
    for row in rows:
        h = 0x345678
        mult = 1000003
        for i, a in enumerate(row):
            h = ((h ^ a) * mult) & M64
            mult = (mult + 82520 + 2 * (num_items - i)) & M64
        out.append((h + 97531) & M64)
    return out


def small_fact_ids(
    kind: str, columns: Sequence[tuple[str, pa.ChunkedArray | pa.Array]]
) -> list[str]:
    """Fact ids, as decimal strings, of the rows of ``columns`` ((parity dtype, values) pairs).

    ``columns`` are canonical (typed as ``canonical_schema`` types them) and in hashing order:
    entity keys, ``event_time``, then for ``kind == "event"`` the schema fields. Equal to
    ``pandas_fact_ids`` on the same input, for any number of rows; meant for small batches.
    """
    per_column = [_column_hashes(dtype, values) for dtype, values in columns]
    hashes = _combine(list(zip(*per_column)))
    if kind == "event":
        seen: dict[int, int] = {}
        pairs = []
        for h in hashes:
            occurrence = seen.get(h, 0)
            seen[h] = occurrence + 1
            pairs.append((_mix(h), _int_hash(occurrence)))
        hashes = _combine(pairs)
    return [str(h) for h in hashes]


def pandas_fact_ids(kind: str, columns: Mapping[str, pa.ChunkedArray]) -> pa.ChunkedArray:
    """Fact ids through pandas (the defining implementation); fastest for large batches.

    ``columns`` maps names to canonical columns in hashing order (see ``small_fact_ids``).
    """
    import pandas as pd  # deferred: importing pandas is not free, and small pushes skip it

    frame = pa.table(dict(columns)).to_pandas()
    hashes = pd.util.hash_pandas_object(frame, index=False)
    if kind == "event":
        occurrence = hashes.groupby(hashes).cumcount()
        hashes = pd.util.hash_pandas_object(
            pd.DataFrame({"h": hashes.to_numpy(), "o": occurrence.to_numpy()}), index=False
        )
    return pa.chunked_array([pa.array(hashes.to_numpy()).cast(pa.string())])


def fact_ids(
    kind: str, columns: Mapping[str, pa.ChunkedArray], dtypes: Mapping[str, str]
) -> pa.ChunkedArray:
    """Content fact ids of canonical ``columns`` (name -> values, in hashing order).

    ``dtypes`` gives each column's parity dtype. Small batches are hashed in plain Python,
    large ones through pandas; both give the same ids.
    """
    columns, dtypes = _texts_for_nested(columns, dtypes)
    n = len(next(iter(columns.values()))) if columns else 0
    if n <= SMALL_BATCH:
        pairs = [(dtypes[name], column) for name, column in columns.items()]
        return pa.chunked_array([pa.array(small_fact_ids(kind, pairs), pa.string())])
    return pandas_fact_ids(kind, columns)


def _texts_for_nested(
    columns: Mapping[str, pa.ChunkedArray], dtypes: Mapping[str, str]
) -> tuple[dict[str, pa.ChunkedArray], dict[str, str]]:
    """Nested columns replaced by their canonical JSON texts, typed ``str`` (see above)."""
    out_columns = dict(columns)
    out_dtypes = dict(dtypes)
    for name, dtype in dtypes.items():
        if is_nested(dtype):
            texts = encode_column(dtype, columns[name])
            out_columns[name] = pa.chunked_array([pa.array(texts, pa.string())])
            out_dtypes[name] = "str"
    return out_columns, out_dtypes
