"""Tiles: per (source, entity) partial aggregates by event-time bucket, for reads in bounded time.

An entity's tiles are one **summary** and one **bucket record** per hour of event time that
holds facts. Both describe the entity's *final own facts*: per fact id the version recorded
last, when it is about this entity and not a tombstone. A bucket record is a ``Block`` of those
facts whose event_time falls in the bucket (the raw facts a window edge needs); the summary
holds, over the sorted bucket numbers, prefix sums of what count/sum/mean need and per-bucket
min/max, so a window's full buckets cost two array reads whatever the history length:

- ``count[i]``: final own facts in buckets ``[0, i)``; ``nonnull[f][i]`` the same for
  non-null values of field ``f``;
- ``isum[f][i]``: int fields, the int64 sum (wrapping exactly as numpy's sum does);
- ``fsum[f][i]``: int and float fields, the EXACT sum of the values as doubles, stored as
  ``exactsum.partials`` (one row per prefix, zero-padded), so a window's sum is one correctly
  rounded ``math.fsum``, bit for bit the raw evaluation's;
- ``low[f]``/``high[f]``: per bucket min/max of the non-null values (a sentinel where none);
- ``latest``: the greatest recorded_at of any version the entity held when the summary was
  built (pending blocks are checked row by row). At a request time
  ``t > latest`` every version is known, so the final facts are exactly the standing ones;
  at ``t <= latest`` (a past ``at``, a correction recorded later) the tiles do not apply and
  the reader evaluates raw facts;
- ``inexact``: numeric fields holding a value with no exact sum (inf, nan, -0.0) or whose
  exact sum overflows a double; aggregates over them use raw facts.

Facts pushed since the summary was built (never seen before, so single-version) wait in
**pending blocks** until a rebuild folds them in; reads evaluate them row by row.

Everything here is pure data and arithmetic; where tiles are written is ``tilewrite``, how
they are read ``tileread``.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from parity.definitions import Source
from parity.errors import WorkspaceError
from parity.online.base import Block, source_signature
from parity.online.exactsum import finite, partials, scaled

WIDTH = 3_600_000_000  # bucket width: one hour of event time, in microseconds
SUMMARY = -(1 << 62)  # the bucket number under which a store keeps an entity's summary
PENDING = 1 << 61  # pending blocks are kept under PENDING + the segment's number
NO_RECORD = -(1 << 63)  # ``latest`` of an entity holding no version
_COUNTED = ("int", "float", "bool", "str", "timestamp")
_MAGIC = b"PT1"
_RECORD = b"PR2"
_SENTINELS = {
    "int": (np.iinfo(np.int64).max, np.iinfo(np.int64).min),
    "float": (np.inf, -np.inf),
}


@dataclass
class Summary:
    """One entity's prefix sums and per-bucket extremes over hour buckets (module docstring)."""

    buckets: np.ndarray
    count: np.ndarray
    nonnull: dict[str, np.ndarray]
    isum: dict[str, np.ndarray]
    fsum: dict[str, np.ndarray]
    low: dict[str, np.ndarray]
    high: dict[str, np.ndarray]
    inexact: frozenset[str]
    latest: int
    own: bool

    def nbytes(self) -> int:
        """Bytes held by the summary's arrays."""
        arrays = [self.buckets, self.count]
        for table in (self.nonnull, self.isum, self.fsum, self.low, self.high):
            arrays += list(table.values())
        return sum(a.nbytes for a in arrays)


@dataclass
class TileWrite:
    """What one write does to one entity's tiles, applied atomically with its segments.

    ``reset`` deletes every tile record of the entity first (summary, bucket records,
    pending blocks); ``summary`` (when given) replaces the summary; ``buckets`` sets (a Block)
    or deletes (None) bucket records; ``pending`` appends a **pending block**: facts never
    seen before, pushed since the summary was built, which reads evaluate row by row until
    the next rebuild folds them in (so a push of new facts reads nothing).
    """

    summary: Summary | None = None
    buckets: dict[int, Block | None] = field(default_factory=dict)
    reset: bool = False
    pending: Block | None = None


@dataclass
class Tiles:
    """One entity's tiles as a read returns them: the summary (None if the entity has none),
    the requested bucket records (None where absent) and the pending blocks."""

    summary: Summary | None
    records: list[Block | None]
    pending: list[Block]


def counted_fields(source: Source) -> list[str]:
    """Fields whose non-null values the summary counts."""
    return _shape(source)[0]


def numeric_fields(source: Source) -> list[str]:
    """Fields the summary sums and keeps extremes of (int and float)."""
    return _shape(source)[1]


def _shape(source: Source) -> tuple[list[str], list[str], str]:
    """(counted fields, numeric fields, signature) of a source, computed once per object:
    sources are frozen, and the read path asks on every request."""
    cached = _SHAPES.get(id(source))
    if cached is None or cached[0] is not source:
        counted = [f for f, d in source.schema.items() if d in _COUNTED]
        numeric = [f for f, d in source.schema.items() if d in _SENTINELS]
        cached = _SHAPES[id(source)] = (
            source,
            (counted, numeric, f"{source_signature(source)}/{WIDTH}"),
        )
    return cached[1]


_SHAPES: dict[int, tuple[Source, tuple[list[str], list[str], str]]] = {}


def bucket_of(event_time: np.ndarray) -> np.ndarray:
    """The bucket numbers of event times (floor division, so negative times work too)."""
    return np.asarray(event_time, np.int64) // WIDTH


def build(source: Source, block: Block, latest: int, own: bool) -> Summary:
    """The summary of ``block``, an entity's final own facts (any row order)."""
    bucket = np.asarray(bucket_of(block.event_time), np.int64)
    order = np.argsort(bucket, kind="stable")
    ids, starts = np.unique(bucket[order], return_index=True)
    n = len(ids)
    ends = np.append(starts[1:], len(order)).astype(np.int64) if n else np.zeros(0, np.int64)

    def prefix(per_bucket: np.ndarray) -> np.ndarray:
        out = np.zeros(n + 1, np.int64)
        np.cumsum(per_bucket, out=out[1:])
        return out

    def per_bucket(values: np.ndarray) -> np.ndarray:
        return np.add.reduceat(values, starts) if n else np.zeros(0, values.dtype)

    nonnull, isum, fsum, low, high = {}, {}, {}, {}, {}
    inexact: set[str] = set()
    for name in counted_fields(source):
        nonnull[name] = prefix(per_bucket(block.valid[name][order].astype(np.int64)))
    for name in numeric_fields(source):
        dtype = source.schema[name]
        ok = block.valid[name][order]
        values = block.values[name][order]
        top, bottom = _SENTINELS[dtype]
        kind = np.int64 if dtype == "int" else np.float64
        low[name] = (
            np.minimum.reduceat(np.where(ok, values, top).astype(kind), starts)
            if n
            else np.zeros(0, kind)
        )
        high[name] = (
            np.maximum.reduceat(np.where(ok, values, bottom).astype(kind), starts)
            if n
            else np.zeros(0, kind)
        )
        if dtype == "int":
            isum[name] = prefix(per_bucket(np.where(ok, values, 0).astype(np.int64)))
        rows, exact = _exact_prefix(values.astype(np.float64), ok, ends)
        fsum[name] = rows
        if not exact:
            inexact.add(name)
    return Summary(
        ids.astype(np.int64),
        prefix((ends - starts) if n else np.zeros(0, np.int64)),
        nonnull,
        isum,
        fsum,
        low,
        high,
        frozenset(inexact),
        latest,
        own,
    )


def empty(source: Source) -> Summary:
    """The summary of an entity holding nothing."""
    return build(source, _no_rows(source), NO_RECORD, False)


def split(block: Block) -> dict[int, Block]:
    """The rows of ``block`` by bucket."""
    bucket = np.asarray(bucket_of(block.event_time), np.int64)
    return {int(b): block.take(np.flatnonzero(bucket == b)) for b in np.unique(bucket).tolist()}


def _exact_prefix(values: np.ndarray, ok: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, bool]:
    """Exact prefix sums (as padded partial rows) of ``values[ok]`` at each bucket end."""
    rows: list[list[float]] = [[]]
    running = 0
    start = 0
    failed = np.zeros((len(ends) + 1, 0)), False  # a non-finite value, or a sum past a double
    try:
        for end in ends.tolist():
            for value, present in zip(values[start:end].tolist(), ok[start:end].tolist()):
                if present:
                    if not finite(value):
                        return failed
                    running += scaled(value)
            rows.append(partials(running))
            start = end
    except OverflowError:  # from partials(): the exact sum exceeds a double
        return failed
    return _padded(rows), True


def _padded(rows: Sequence[list[float]]) -> np.ndarray:
    width = max((len(r) for r in rows), default=0)
    out = np.zeros((len(rows), width), np.float64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def _no_rows(source: Source) -> Block:
    none = np.zeros(0, np.int64)
    objects = np.empty(0, object)
    values = {
        f: (np.zeros(0, np.float64) if d == "float" else np.zeros(0, np.int64))
        if d in _SENTINELS
        else objects
        for f, d in source.schema.items()
    }
    return Block(
        none,
        none,
        np.zeros(0, np.uint8),
        objects,
        values,
        {f: np.zeros(0, bool) for f in source.schema},
    )


# -- codec ----------------------------------------------------------------------------------------


def encode_summary(source: Source, summary: Summary) -> bytes:
    """A summary as bytes: a JSON header, then raw little-endian arrays."""
    parts = [summary.buckets, summary.count]
    parts += [summary.nonnull[f] for f in counted_fields(source)]
    widths = {}
    for name in numeric_fields(source):
        if name in summary.isum:
            parts.append(summary.isum[name])
        widths[name] = summary.fsum[name].shape[1]
        parts += [summary.fsum[name], summary.low[name], summary.high[name]]
    header = json.dumps(
        {
            "sig": _signature(source),
            "n": len(summary.buckets),
            "w": widths,
            "x": sorted(summary.inexact),
            "l": summary.latest,
            "o": summary.own,
        },
        separators=(",", ":"),
    ).encode()
    body = b"".join(np.ascontiguousarray(p, p.dtype.newbyteorder("<")).tobytes() for p in parts)
    return b"".join([_MAGIC, struct.pack("<I", len(header)), header, body])


def decode_summary(source: Source, data: bytes) -> Summary:
    """The summary ``encode_summary`` wrote; WorkspaceError if written for another shape."""
    header: dict[str, Any] = {}
    size = 0
    if data[:3] == _MAGIC:
        (size,) = struct.unpack_from("<I", data, 3)
        header = json.loads(data[7 : 7 + size])
    if header.get("sig") != _signature(source):
        raise WorkspaceError(
            f"source {source.name!r}: the online store's tiles were written for another "
            f"definition of this source; run `parity materialize` to rebuild them"
        )
    n = header["n"]
    offset = 7 + size

    def take(dtype: str, count: int) -> np.ndarray:
        nonlocal offset
        out = np.frombuffer(data, dtype, count, offset)
        offset += out.nbytes
        return out

    buckets = take("<i8", n)
    count = take("<i8", n + 1)
    nonnull = {f: take("<i8", n + 1) for f in counted_fields(source)}
    isum, fsum, low, high = {}, {}, {}, {}
    for name in numeric_fields(source):
        kind = "<i8" if source.schema[name] == "int" else "<f8"
        if source.schema[name] == "int":
            isum[name] = take("<i8", n + 1)
        width = header["w"][name]
        fsum[name] = take("<f8", (n + 1) * width).reshape(n + 1, width)
        low[name] = take(kind, n)
        high[name] = take(kind, n)
    return Summary(
        buckets,
        count,
        nonnull,
        isum,
        fsum,
        low,
        high,
        frozenset(header["x"]),
        int(header["l"]),
        bool(header["o"]),
    )


def encode_record(source: Source, block: Block) -> bytes:
    """A bucket record or pending block as bytes: what reads use of its rows (event and
    record times, which values are null, numeric values), without fact ids or strings, so
    it decodes without parsing."""
    parts = [
        struct.pack("<I", len(block)),
        block.event_time.astype("<i8").tobytes(),
        block.recorded_at.astype("<i8").tobytes(),
    ]
    parts += [block.valid[f].astype(np.uint8).tobytes() for f in counted_fields(source)]
    for name in numeric_fields(source):
        wire = "<i8" if source.schema[name] == "int" else "<f8"
        parts.append(np.where(block.valid[name], block.values[name], 0).astype(wire).tobytes())
    return _RECORD + b"".join(parts)


def decode_record(source: Source, data: bytes) -> Block:
    """The rows ``encode_record`` wrote (fact ids empty, strings absent)."""
    if data[:3] != _RECORD:
        raise WorkspaceError(
            f"source {source.name!r}: the online store holds tiles parity cannot read; run "
            f"`parity materialize` to rebuild them"
        )
    (n,) = struct.unpack_from("<I", data, 3)
    offset = 7
    event_time = np.frombuffer(data, "<i8", n, offset)
    recorded_at = np.frombuffer(data, "<i8", n, offset + 8 * n)
    offset += 16 * n
    valid: dict[str, np.ndarray] = {}
    values: dict[str, np.ndarray] = {}
    for name in counted_fields(source):
        valid[name] = np.frombuffer(data, np.uint8, n, offset).astype(bool)
        offset += n
        values[name] = np.empty(n, object)
    for name in numeric_fields(source):
        wire = "<i8" if source.schema[name] == "int" else "<f8"
        values[name] = np.frombuffer(data, wire, n, offset)
        offset += 8 * n
    for name in source.schema:  # fields reads never use (nested): absent, as nulls
        if name not in values:
            values[name] = np.empty(n, object)
            valid[name] = np.zeros(n, bool)
    return Block(
        event_time, recorded_at, np.zeros(n, np.uint8), np.full(n, "", object), values, valid
    )


def _signature(source: Source) -> str:
    return _shape(source)[2]
