"""The in-process memory store: fastest, and gone when the process ends."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from parity.definitions import Source
from parity.online.base import Block, OnlineStore, TileRead
from parity.online.tiles import (
    PENDING,
    SUMMARY,
    Summary,
    Tiles,
    TileWrite,
    bucket_rows,
    record_keys,
)


class MemoryStore(OnlineStore):
    """Segments as Python objects in dicts; a lock makes every write atomic for readers."""

    def __init__(self) -> None:
        self.url = "memory://"
        self._segments: dict[str, dict[str, list[Block]]] = {}
        self._directory: dict[str, dict[str, str]] = {}
        # source -> entity -> {record key: encoded record}; SUMMARY holds the Summary,
        # PENDING the list of pending blocks
        self._tiles: dict[str, dict[str, dict[int, Any]]] = {}
        self._meta: dict[str, str] = {}
        self._lock = threading.Lock()

    def append(
        self,
        source: Source,
        segments: Mapping[str, Block],
        directory: Mapping[str, str],
        tiles: Mapping[str, TileWrite] | None = None,
        meta: Mapping[str, str] | None = None,
    ) -> dict[str, int]:
        """Append segments, set directory entries, tiles and metadata (see OnlineStore)."""
        with self._lock:
            self._meta.update(meta or {})
            if tiles:
                self._write_tiles(source, tiles)
            buckets = self._segments.setdefault(source.name, {})
            counts = {}
            for entity, block in segments.items():
                # A new list, not an in-place append: a reader holding the old one keeps it whole.
                updated = [*buckets.get(entity, ()), block]
                buckets[entity] = updated
                counts[entity] = len(updated)
            self._directory.setdefault(source.name, {}).update(directory)
        return counts

    def read_tiles(self, requests: Sequence[TileRead]) -> list[Tiles]:
        """Tile summaries, bucket records and pending blocks (see OnlineStore)."""
        out: list[Tiles] = []
        for source, entity, buckets in requests:
            held = self._tiles.get(source.name, {}).get(entity, {})
            summary = held.get(SUMMARY)
            out.append(
                Tiles(
                    summary if isinstance(summary, Summary) else None,
                    [_rows(source, held, b) for b in buckets],
                    list(held.get(PENDING, ())),
                )
            )
        return out

    def _write_tiles(self, source: Source, tiles: Mapping[str, TileWrite]) -> None:
        table = self._tiles.setdefault(source.name, {})
        for entity, change in tiles.items():
            # A new dict, not an in-place update: a reader holding the old one keeps it whole.
            held: dict[int, Any] = {} if change.reset else dict(table.get(entity, {}))
            held.update((key, _Record(data)) for key, data in change.records.items())
            if change.summary is not None:
                held[SUMMARY] = change.summary
            if change.pending is not None:
                held[PENDING] = [*held.get(PENDING, ()), change.pending]
            if held:
                table[entity] = held
            else:
                table.pop(entity, None)

    def read(self, source: Source, entities: Sequence[str]) -> list[list[Block]]:
        """The segments of each entity id (see OnlineStore)."""
        buckets = self._segments.get(source.name, {})
        return [buckets.get(entity, []) for entity in entities]

    def replace(
        self,
        source: Source,
        entity: str,
        count: int,
        merged: Block | None,
        directory: Mapping[str, str | None],
    ) -> bool:
        """Replace the first ``count`` segments of ``entity`` (see OnlineStore)."""
        with self._lock:
            buckets = self._segments.setdefault(source.name, {})
            current = buckets.get(entity, [])
            if len(current) < count:
                return False
            rest = current[count:]
            updated = ([merged] if merged is not None and len(merged) else []) + rest
            if updated:
                buckets[entity] = updated
            else:
                buckets.pop(entity, None)
            table = self._directory.setdefault(source.name, {})
            for fact_id, value in directory.items():
                if value is None:
                    table.pop(fact_id, None)
                else:
                    table[fact_id] = value
        return True

    def directory(self, source: Source, fact_ids: Sequence[str]) -> list[str | None]:
        """Directory entries (see OnlineStore)."""
        table = self._directory.get(source.name, {})
        return [table.get(f) for f in fact_ids]

    def entities(self, source: Source) -> Iterator[str]:
        """Every entity id holding segments of ``source``."""
        return iter(list(self._segments.get(source.name, {})))

    def get_meta(self, name: str) -> str | None:
        """A metadata value."""
        return self._meta.get(name)

    def set_meta(self, name: str, value: str) -> None:
        """Set a metadata value."""
        self._meta[name] = value

    def clear(self, source: Source) -> None:
        """Forget everything about ``source``."""
        with self._lock:
            self._segments.pop(source.name, None)
            self._directory.pop(source.name, None)
            self._tiles.pop(source.name, None)

    def entity_bytes(self, source: Source, entity: str) -> int:
        """Approximate bytes of one entity's blocks and tiles."""
        total = sum(b.nbytes() for b in self._segments.get(source.name, {}).get(entity, []))
        for key, held in self._tiles.get(source.name, {}).get(entity, {}).items():
            parts = held if key == PENDING else [held]
            total += sum(len(p.data) if isinstance(p, _Record) else p.nbytes() for p in parts)
        return total


class _Record:
    """An encoded tile record and the bucket rows decoded from it so far (a record never
    changes: a rebuild stores new ones)."""

    __slots__ = ("data", "rows")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.rows: dict[int, Block | None] = {}


def _rows(source: Source, held: Mapping[int, Any], bucket: int) -> Block | None:
    """The rows of ``bucket``, from the record holding it (decoded once per bucket)."""
    record = _holding(held, bucket)
    if record is None:
        return None
    if bucket not in record.rows:
        record.rows[bucket] = bucket_rows(source, {bucket: record.data}, [bucket])[0]
    return record.rows[bucket]


def _holding(held: Mapping[int, Any], bucket: int) -> _Record | None:
    """The record holding ``bucket``'s rows: its own (dense), else its day's."""
    own, day = record_keys(bucket)
    found = held.get(own, held.get(day))
    return found if isinstance(found, _Record) else None
