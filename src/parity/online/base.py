"""The online store interface, and the columnar block of fact versions every store holds.

An online store is plain storage; it knows nothing about windows, visibility or features.
For each (source, entity) it keeps an ordered list of **segments**: ``Block``s of fact
versions appended by one push (or merged by a compaction). Next to them it keeps, per source,
a **fact directory** ``fact_id -> entities``, so that a correction that moves a fact to another
entity can reach every entity that holds a version of it, and a little metadata (the
horizon watermark, and per source the applied watermark of ``parity.online.readiness``), and
per (source, entity) of an event source its **tiles** (``parity.online.tiles``: a summary,
bucket records and pending blocks, written in the same atomic call as the segments).
Orchestration (what to append, when to compact, what to evict) lives in
``parity.online.writer``, ``routing``, ``maintenance`` and ``bulk``; a new backend implements
the abstract methods below, translates its driver's errors to ``parity.errors`` in one place,
and passes the conformance suite in ``tests/online``.

Entities are named by their **entity id**: the JSON list of their key values, e.g. ``[42]``
or ``["gb", 7]``; it keeps ints and strings apart and is safe as a Redis key or SQLite text.
"""

from __future__ import annotations

import hashlib
import json
import struct
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from parity.definitions import Source
from parity.dtypes import decode_nested, encode_nested, is_nested
from parity.errors import WorkspaceError

if TYPE_CHECKING:
    from parity.online.tiles import Tiles, TileWrite

TOMBSTONE_FLAG = 1  # the version deletes its fact
FOREIGN_FLAG = 2  # the version is about another entity (a correction moved the fact away)
_NUMPY_TYPES = {"int": np.int64, "float": np.float64, "bool": np.bool_, "timestamp": np.int64}
_MAGIC = b"PB1"


@dataclass
class Block:
    """Fact versions of one source about one entity, as columns of equal length.

    Times are epoch microseconds. ``flags`` holds TOMBSTONE_FLAG and FOREIGN_FLAG bits.
    ``values[field]`` is an int64/float64/bool array (timestamps as int64 microseconds) or an
    object array of str, or of Python lists/dicts for a nested field (stored as canonical JSON
    text by ``encode``); ``valid[field]`` is False where the value is null.
    """

    event_time: np.ndarray
    recorded_at: np.ndarray
    flags: np.ndarray
    fact_id: np.ndarray
    values: dict[str, np.ndarray]
    valid: dict[str, np.ndarray]
    ordered: bool = False  # rows sorted by (event_time, recorded_at, fact_id), no duplicates
    unique_ids: bool = False  # every fact id occurs once (no corrections held)

    def __len__(self) -> int:
        return len(self.event_time)

    def take(self, index: np.ndarray) -> Block:
        """The rows at ``index`` (an integer or boolean array), in that order."""
        return Block(
            self.event_time[index],
            self.recorded_at[index],
            self.flags[index],
            self.fact_id[index],
            {k: v[index] for k, v in self.values.items()},
            {k: v[index] for k, v in self.valid.items()},
        )

    def nbytes(self) -> int:
        """Approximate memory held by the block's arrays and strings."""
        total = self.event_time.nbytes + self.recorded_at.nbytes + self.flags.nbytes
        total += sum(49 + len(f) for f in self.fact_id)
        for name, column in self.values.items():
            total += self.valid[name].nbytes
            if column.dtype == object:
                total += 8 * len(column) + sum(49 + len(s) for s in column if s is not None)
            else:
                total += column.nbytes
        return total


def concat(blocks: Sequence[Block]) -> Block:
    """One block holding the rows of ``blocks`` in order."""
    if len(blocks) == 1:
        return blocks[0]
    first = blocks[0]
    return Block(
        np.concatenate([b.event_time for b in blocks]),
        np.concatenate([b.recorded_at for b in blocks]),
        np.concatenate([b.flags for b in blocks]),
        np.concatenate([b.fact_id for b in blocks]),
        {k: np.concatenate([b.values[k] for b in blocks]) for k in first.values},
        {k: np.concatenate([b.valid[k] for b in blocks]) for k in first.valid},
    )


def entity_id(key: Sequence[Any]) -> str:
    """The entity id of a key tuple (see the module docstring)."""
    return json.dumps(list(key), separators=(",", ":"))


def source_signature(source: Source) -> str:
    """A short hash of a source's stored shape; segments of another shape are refused."""
    body = json.dumps([source.kind, dict(source.entity.keys), dict(source.schema)])
    cached = _SIGNATURES.get(body)
    if cached is None:
        cached = _SIGNATURES[body] = hashlib.sha256(body.encode()).hexdigest()[:12]
    return cached


_SIGNATURES: dict[str, str] = {}


def encode(source: Source, block: Block) -> bytes:
    """Serialise a block: a small JSON header, then raw little-endian arrays and strings.

    Strings (fact ids, str fields) travel NUL-joined, which decodes with one ``split``; a
    column holding a NUL character falls back to JSON.
    """
    buffers = [
        block.event_time.astype("<i8").tobytes(),
        block.recorded_at.astype("<i8").tobytes(),
        block.flags.astype(np.uint8).tobytes(),
    ]
    texts: list[tuple[str, list[Any], np.ndarray | None]] = [("fid", block.fact_id.tolist(), None)]
    for name, dtype in source.schema.items():
        if dtype == "str":
            texts.append((name, block.values[name].tolist(), block.valid[name]))
            continue
        if is_nested(dtype):  # canonical JSON text (encode_nested), then like a str column
            mask = block.valid[name]
            items = [
                (encode_nested(dtype, v) or "") if ok else ""
                for v, ok in zip(block.values[name].tolist(), mask.tolist())
            ]
            texts.append((name, items, mask))
            continue
        buffers.append(block.values[name].astype(_wire(dtype)).tobytes())
        buffers.append(block.valid[name].astype(np.uint8).tobytes())
    sizes = []
    for _, items, valid in texts:
        if valid is not None:
            buffers.append(valid.astype(np.uint8).tobytes())
            items = [v if ok else "" for v, ok in zip(items, valid.tolist())]
        joined = "\x00".join(items)
        if len(items) and joined.count("\x00") != len(items) - 1:
            raw = b"J" + json.dumps(items).encode()
        else:
            raw = b"S" + joined.encode()
        sizes.append(len(raw))
        buffers.append(raw)
    header = json.dumps(
        {
            "sig": source_signature(source),
            "n": len(block),
            "o": [block.ordered, block.unique_ids],
            "t": sizes,
        },
        separators=(",", ":"),
    ).encode()
    return b"".join([_MAGIC, struct.pack("<I", len(header)), header, *buffers])


def decode(source: Source, data: bytes) -> Block:
    """The block that ``encode`` wrote; WorkspaceError if it was written for another shape."""
    if data[:3] != _MAGIC:
        raise WorkspaceError(
            "the online store holds data parity cannot read; run `parity materialize`"
        )
    (size,) = struct.unpack_from("<I", data, 3)
    header = json.loads(data[7 : 7 + size])
    if header["sig"] != source_signature(source):
        raise WorkspaceError(
            f"source {source.name!r}: the online store was filled for another definition of "
            f"this source; run `parity materialize` to rebuild it"
        )
    n = header["n"]
    offset = 7 + size
    event_time = np.frombuffer(data, "<i8", n, offset)
    recorded_at = np.frombuffer(data, "<i8", n, offset + 8 * n)
    flags = np.frombuffer(data, np.uint8, n, offset + 16 * n)
    offset += 17 * n
    values: dict[str, np.ndarray] = {}
    valid: dict[str, np.ndarray] = {}
    strings = [n for n, dtype in source.schema.items() if dtype == "str" or is_nested(dtype)]
    for name, dtype in source.schema.items():
        if dtype == "str" or is_nested(dtype):
            continue
        wire = _wire(dtype)
        values[name] = np.frombuffer(data, wire, n, offset).astype(_NUMPY_TYPES[dtype], copy=False)
        offset += wire.itemsize * n
        valid[name] = np.frombuffer(data, np.uint8, n, offset).astype(bool)
        offset += n
    sizes = header["t"]
    fact_id = _texts(data[offset : offset + sizes[0]], n)
    offset += sizes[0]
    for name, length in zip(strings, sizes[1:]):
        valid[name] = np.frombuffer(data, np.uint8, n, offset).astype(bool)
        offset += n
        column = _texts(data[offset : offset + length], n)
        offset += length
        if not valid[name].all():
            column[~valid[name]] = None
        dtype = source.schema[name]
        if dtype != "str":
            column = nested_objects([decode_nested(dtype, text) for text in column.tolist()])
        values[name] = column
    ordered, unique_ids = header["o"]
    return Block(event_time, recorded_at, flags, fact_id, values, valid, ordered, unique_ids)


def _texts(raw: bytes, n: int) -> np.ndarray:
    if not n:
        return np.empty(0, dtype=object)
    items = json.loads(raw[1:]) if raw[:1] == b"J" else raw[1:].decode().split("\x00")
    return _objects(items)


def _wire(dtype: str) -> np.dtype[Any]:
    return np.dtype(np.uint8) if dtype == "bool" else np.dtype("<f8" if dtype == "float" else "<i8")


def _objects(items: list[Any]) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


def nested_objects(items: Sequence[Any]) -> np.ndarray:
    """An object array holding ``items`` (lists, dicts, None) as they are, one per slot.

    Slice assignment would let numpy unpack equal-length lists into a second dimension.
    """
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = item
    return out


#: (source, entity id, bucket numbers): the tile records one ``OnlineStore.read_tiles`` reads
TileRead = tuple[Source, str, Sequence[int]]


class OnlineStore(ABC):
    """Storage of segments, fact directories and metadata. No time rules in here.

    Every method that writes is atomic: after an exception nothing of that call is visible.
    A store is used by one writer (an ``OnlineFeatures`` pushing facts) and any number of
    readers.
    """

    url: str = ""

    @abstractmethod
    def append(
        self,
        source: Source,
        segments: Mapping[str, Block],
        directory: Mapping[str, str],
        tiles: Mapping[str, TileWrite] | None = None,
        meta: Mapping[str, str] | None = None,
    ) -> dict[str, int]:
        """Append one segment per entity id, set directory entries, tiles and metadata, all
        or nothing.

        ``directory`` maps fact ids to their entities (entity ids joined by newlines);
        ``tiles`` maps entity ids to the change of their tiles (``parity.online.tiles``);
        ``meta`` sets metadata values (a push's watermarks commit with its facts).
        Returns the number of segments each touched entity holds afterwards.
        """

    @abstractmethod
    def read_tiles(self, requests: Sequence[TileRead]) -> list[Tiles]:
        """Per (source, entity id, bucket numbers): the entity's tile summary, the bucket
        record of each bucket number and its pending blocks (``parity.online.tiles.Tiles``)."""

    @abstractmethod
    def read(self, source: Source, entities: Sequence[str]) -> list[list[Block]]:
        """The segments of each entity id, oldest first (an empty list for an unknown one)."""

    def read_sources(
        self, requests: Sequence[tuple[Source, Sequence[str]]]
    ) -> list[list[list[Block]]]:
        """Several ``read`` calls at once; a networked store answers them in one round trip."""
        return [self.read(source, entities) for source, entities in requests]

    @abstractmethod
    def replace(
        self,
        source: Source,
        entity: str,
        count: int,
        merged: Block | None,
        directory: Mapping[str, str | None],
    ) -> bool:
        """Replace the first ``count`` segments of ``entity`` by ``merged`` (None: by nothing).

        Also sets directory entries (None deletes one). Returns False, changing nothing, if the
        entity no longer starts with those ``count`` segments (someone else compacted it).
        """

    @abstractmethod
    def directory(self, source: Source, fact_ids: Sequence[str]) -> list[str | None]:
        """The directory entry of each fact id, or None for a fact id never stored."""

    @abstractmethod
    def entities(self, source: Source) -> Iterator[str]:
        """Every entity id that holds segments of ``source``."""

    @abstractmethod
    def get_meta(self, name: str) -> str | None:
        """A metadata value (None if unset)."""

    @abstractmethod
    def set_meta(self, name: str, value: str) -> None:
        """Set a metadata value."""

    @abstractmethod
    def clear(self, source: Source) -> None:
        """Forget every segment and directory entry of ``source``."""

    @abstractmethod
    def entity_bytes(self, source: Source, entity: str) -> int:
        """Bytes the store spends on one entity's segments and tiles (the memory benchmark)."""

    def close(self) -> None:  # noqa: B027 - optional for stores without resources
        """Release connections and files."""
