"""The in-process memory store: fastest, and gone when the process ends."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence

from parity.definitions import Source
from parity.online.base import Block, OnlineStore


class MemoryStore(OnlineStore):
    """Segments as Python objects in dicts; a lock makes every write atomic for readers."""

    def __init__(self) -> None:
        self.url = "memory://"
        self._segments: dict[str, dict[str, list[Block]]] = {}
        self._directory: dict[str, dict[str, str]] = {}
        self._meta: dict[str, str] = {}
        self._lock = threading.Lock()

    def append(
        self, source: Source, segments: Mapping[str, Block], directory: Mapping[str, str]
    ) -> dict[str, int]:
        """Append one segment per entity id and set directory entries (see OnlineStore)."""
        with self._lock:
            buckets = self._segments.setdefault(source.name, {})
            counts = {}
            for entity, block in segments.items():
                # A new list, not an in-place append: a reader holding the old one keeps it whole.
                updated = [*buckets.get(entity, ()), block]
                buckets[entity] = updated
                counts[entity] = len(updated)
            self._directory.setdefault(source.name, {}).update(directory)
        return counts

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

    def entity_bytes(self, source: Source, entity: str) -> int:
        """Approximate bytes of one entity's blocks."""
        return sum(b.nbytes() for b in self._segments.get(source.name, {}).get(entity, []))
