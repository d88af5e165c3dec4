"""Tiles: per (source, entity) partial aggregates by event-time bucket, for reads in bounded time.

An entity's tiles are one **summary** and its **records**. Both describe the entity's *final
own facts*: per fact id the version recorded last, when it is about this entity and not a
tombstone. Event time is cut into hour buckets. A record holds the rows (event time, null
flags, numeric values: what a window edge needs) of the buckets of one UTC day, grouped by
bucket behind a table of row offsets, so a read decodes one bucket's rows; a bucket of
``DENSE`` rows or more is a record of its own (``encode_records``). The summary holds, over
the sorted bucket numbers, prefix sums of what count/sum/mean need and per-bucket min/max, so
a window's full buckets cost two array reads whatever the history length:

- ``count[i]``: final own facts in buckets ``[0, i)``; ``nonnull[f][i]`` the same for
  non-null values of field ``f``;
- ``isum[f][i]``: int fields, the int64 sum (wrapping exactly as numpy's sum does);
- ``fsum[f][i]``: int and float fields, the EXACT sum of the values as doubles, stored as
  doubles whose exact sum it is (``exactsum.prefix_rows``: one row per prefix), so a
  window's sum is one correctly rounded ``math.fsum``, bit for bit the raw evaluation's;
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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from parity.definitions import Source
from parity.errors import WorkspaceError
from parity.online.base import Block, source_signature
from parity.online.exactsum import prefix_rows

WIDTH = 3_600_000_000  # bucket width: one hour of event time, in microseconds
SPAN = 24  # a record holds rows of at most one day of buckets (a UTC day)
DENSE = 16  # a bucket of at least this many rows is a record of its own
DAYS = 1 << 50  # the record of a day's sparse buckets is kept under DAYS + the day's number
SUMMARY = -(1 << 62)  # the bucket number under which a store keeps an entity's summary
PENDING = 1 << 61  # pending blocks are kept under PENDING + the segment's number
NO_RECORD = -(1 << 63)  # ``latest`` of an entity holding no version
_COUNTED = ("int", "float", "bool", "str", "timestamp")
_MAGIC = b"PT2"
_RECORD = b"PR2"  # a pending block
_DAY = b"PR3"  # a record: SPAN buckets of rows, sorted by bucket, with row offsets
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

    ``reset`` deletes every tile record of the entity first (summary, records, pending
    blocks); ``summary`` (when given) replaces the summary; ``records`` sets records, encoded
    (``encode_records``), by key (``record_keys``): all of the entity's records, so it
    comes with ``reset`` (a stale record under the other key would shadow it); ``pending``
    appends a
    **pending block**: facts never seen before, pushed since the summary was built, which
    reads evaluate row by row until the next rebuild folds them in (so a push of new facts
    reads nothing).
    """

    summary: Summary | None = None
    records: dict[int, bytes] = field(default_factory=dict)
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
            (counted, numeric, f"{source_signature(source)}/{WIDTH}x{SPAN}"),
        )
    return cached[1]


_SHAPES: dict[int, tuple[Source, tuple[list[str], list[str], str]]] = {}


def bucket_of(event_time: np.ndarray) -> np.ndarray:
    """The bucket numbers of event times (floor division, so negative times work too)."""
    return np.asarray(event_time, np.int64) // WIDTH


def build(source: Source, block: Block, latest: int, own: bool) -> Summary:
    """The summary of ``block``, an entity's final own facts (any row order)."""
    bucket, order = _by_bucket(block)

    def sorted_(values: np.ndarray) -> np.ndarray:
        return values if order is None else values[order]

    first = np.ones(len(bucket), bool)
    np.not_equal(bucket[1:], bucket[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    n = len(starts)
    cuts = np.append(starts, len(bucket))  # row counts before each bucket, and in all

    def prefix(flags: np.ndarray) -> np.ndarray:
        """Prefix counts of true ``flags`` at each bucket start (and the end)."""
        out = np.zeros(n + 1, np.int64)
        if n:
            out[1:] = np.cumsum(flags, dtype=np.int64)[cuts[1:] - 1]
        return out

    nonnull, isum, fsum, low, high = {}, {}, {}, {}, {}
    inexact: set[str] = set()
    for name in counted_fields(source):
        nonnull[name] = prefix(sorted_(block.valid[name]))
    for name in numeric_fields(source):
        dtype = source.schema[name]
        ok = sorted_(block.valid[name])
        values = sorted_(block.values[name])
        top, bottom = _SENTINELS[dtype]
        kind = np.int64 if dtype == "int" else np.float64
        if n:
            low[name] = np.minimum.reduceat(np.where(ok, values, top).astype(kind), starts)
            high[name] = np.maximum.reduceat(np.where(ok, values, bottom).astype(kind), starts)
        else:
            low[name] = high[name] = np.zeros(0, kind)
        if dtype == "int":
            running = np.cumsum(np.where(ok, values, 0).astype(np.int64))  # wraps like numpy
            isum[name] = np.concatenate([[0], running[cuts[1:] - 1]]).astype(np.int64)
        counts = nonnull[name] if name in nonnull else prefix(ok)
        rows = prefix_rows(values[ok].astype(np.float64), counts)
        if rows is None:  # a value without an exact sum, or a sum past a double
            rows = np.zeros((n + 1, 0))
            inexact.add(name)
        fsum[name] = rows
    return Summary(
        bucket[starts].astype(np.int64),
        np.concatenate([[0], cuts[1:]]).astype(np.int64),
        nonnull,
        isum,
        fsum,
        low,
        high,
        frozenset(inexact),
        latest,
        own,
    )


def _by_bucket(block: Block) -> tuple[np.ndarray, np.ndarray | None]:
    """(bucket numbers sorted, the row order sorting them; None when already sorted)."""
    bucket = np.asarray(bucket_of(block.event_time), np.int64)
    if len(bucket) < 2 or bool((bucket[1:] >= bucket[:-1]).all()):
        return bucket, None
    order = np.argsort(bucket, kind="stable")
    return bucket[order], order


def empty(source: Source) -> Summary:
    """The summary of an entity holding nothing."""
    return build(source, _no_rows(source), NO_RECORD, False)


def record_keys(bucket: int) -> tuple[int, int]:
    """The keys of the records that can hold ``bucket``'s rows: its own (a dense bucket) and
    its day's (the day's sparse buckets). At most one of them holds rows of ``bucket``."""
    return bucket, DAYS + bucket // SPAN


def encode_records(source: Source, block: Block) -> dict[int, bytes]:
    """``block``'s rows as records by key (``record_keys``): a bucket of ``DENSE`` rows or
    more is a record of its own, under its bucket number, so a read of a busy entity fetches
    one hour; the other buckets of a day share one record, under ``DAYS`` + the day, so a
    sparse entity needs one record a day, not one per bucket. A record holds its rows grouped
    by bucket behind the row offset of each bucket of the day, so a read decodes one bucket's
    rows (``bucket_rows``) without parsing the rest. It keeps what
    reads of final facts use: event times, null flags, numeric values (no record times: a
    read uses the records only at ``t > latest``, where every version is known)."""
    bucket, order = _by_bucket(block)
    if not len(bucket):
        return {}
    first = np.ones(len(bucket), bool)  # rows that start a bucket
    np.not_equal(bucket[1:], bucket[:-1], out=first[1:])
    lead = np.flatnonzero(first)
    sizes = np.diff(np.append(lead, len(bucket)))
    dense = np.repeat(sizes >= DENSE, sizes)
    key = np.where(dense, bucket, DAYS + bucket // SPAN)
    regroup = np.argsort(key, kind="stable")  # rows by record, by bucket within a record
    key, bucket = key[regroup], bucket[regroup]
    order = regroup if order is None else order[regroup]
    opens = np.ones(len(key), bool)
    np.not_equal(key[1:], key[:-1], out=opens[1:])
    starts = np.flatnonzero(opens)
    ids = key[starts]
    ends = np.append(starts[1:], len(key))
    # Row offsets of each bucket of the record's day: a monotone (record, slot) number.
    rank = np.cumsum(opens) - 1
    place = rank * (SPAN + 1) + bucket % SPAN
    grid = np.arange(len(starts))[:, None] * (SPAN + 1) + np.arange(SPAN + 1)
    heads = (np.searchsorted(place, grid.ravel()).reshape(grid.shape) - starts[:, None]).astype(
        "<u4"
    )
    rows = np.empty(len(bucket), _row_type(source))
    picked = slice(None) if order is None else order
    rows["t"] = block.event_time[picked]
    for name in counted_fields(source):
        rows["v:" + name] = block.valid[name][picked]
    for name in numeric_fields(source):
        rows["x:" + name] = np.where(block.valid[name], block.values[name], 0)[picked]
    data = rows.tobytes()
    width = rows.dtype.itemsize
    out: dict[int, bytes] = {}
    for i, (record, start, end) in enumerate(zip(ids.tolist(), starts.tolist(), ends.tolist())):
        out[record] = b"".join([_DAY, heads[i].tobytes(), data[start * width : end * width]])
    return out


def _row_type(source: Source) -> np.dtype:
    """The packed little-endian row of a record: event time, null flags, numeric values."""
    cached = _ROW_TYPES.get(id(source))
    if cached is None or cached[0] is not source:
        fields = [("t", "<i8")]
        fields += [("v:" + f, "u1") for f in counted_fields(source)]
        fields += [
            ("x:" + f, "<i8" if source.schema[f] == "int" else "<f8")
            for f in numeric_fields(source)
        ]
        cached = _ROW_TYPES[id(source)] = (source, np.dtype(fields))
    return cached[1]


_ROW_TYPES: dict[int, tuple[Source, np.dtype]] = {}


def bucket_rows(
    source: Source, found: Mapping[int, bytes], buckets: Sequence[int]
) -> list[Block | None]:
    """Per bucket number, its rows (None where it holds none), from the records ``found`` by
    key (those of ``record_keys`` of each bucket that exist)."""
    out = []
    for bucket in buckets:
        own, day = record_keys(bucket)
        out.append(_bucket_of_record(source, found.get(own, found.get(day)), bucket))
    return out


def _bucket_of_record(source: Source, data: bytes | None, bucket: int) -> Block | None:
    if data is None:
        return None
    if data[:3] != _DAY:
        raise WorkspaceError(
            f"source {source.name!r}: the online store holds tiles parity cannot read; run "
            f"`parity materialize` to rebuild them"
        )
    slot = bucket % SPAN
    first, last = struct.unpack_from("<II", data, 3 + 4 * slot)
    if first == last:
        return None
    kind = _row_type(source)
    rows = np.frombuffer(data, kind, last - first, 3 + 4 * (SPAN + 1) + kind.itemsize * first)
    n = len(rows)
    event_time = rows["t"]
    recorded_at = np.full(n, NO_RECORD, np.int64)  # final facts: every version is known
    valid: dict[str, np.ndarray] = {}
    values: dict[str, np.ndarray] = {}
    for name in counted_fields(source):
        valid[name] = rows["v:" + name].astype(bool)
        values[name] = np.empty(n, object)
    for name in numeric_fields(source):
        values[name] = rows["x:" + name]
    return _rows_block(source, event_time, recorded_at, values, valid)


def split(block: Block) -> dict[int, Block]:
    """The rows of ``block`` by bucket."""
    bucket = np.asarray(bucket_of(block.event_time), np.int64)
    return {int(b): block.take(np.flatnonzero(bucket == b)) for b in np.unique(bucket).tolist()}


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
    # A field never null has its non-null prefix equal to the event count: not stored twice.
    full = [f for f in counted_fields(source) if np.array_equal(summary.nonnull[f], summary.count)]
    parts += [summary.nonnull[f] for f in counted_fields(source) if f not in full]
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
            "c": full,
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
    full = set(header["c"])
    nonnull = {f: count if f in full else take("<i8", n + 1) for f in counted_fields(source)}
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
    return _rows_block(source, event_time, recorded_at, values, valid)


def _rows_block(
    source: Source,
    event_time: np.ndarray,
    recorded_at: np.ndarray,
    values: dict[str, np.ndarray],
    valid: dict[str, np.ndarray],
) -> Block:
    """A Block of decoded tile rows: fact ids empty, fields reads never use (strings,
    nested) absent, as nulls."""
    n = len(event_time)
    for name in source.schema:
        if name not in values:
            values[name] = np.empty(n, object)
            valid[name] = np.zeros(n, bool)
    return Block(
        event_time, recorded_at, np.zeros(n, np.uint8), np.full(n, "", object), values, valid
    )


def _signature(source: Source) -> str:
    return _shape(source)[2]
