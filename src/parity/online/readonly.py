"""A read-only view of any online store: reads pass through, writes raise StorageError.

Used for pure reads (``parity get``) on stores that cannot be opened read-only natively
(memory, Redis); SQLite additionally opens its file with ``mode=ro`` so nothing on disk changes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import NoReturn

from parity.definitions import Source
from parity.errors import StorageError
from parity.online.base import Block, OnlineStore, TileRead
from parity.online.tiles import Tiles, TileWrite


class ReadOnlyStore(OnlineStore):
    """Wraps ``inner``; every write raises StorageError naming the store."""

    def __init__(self, inner: OnlineStore) -> None:
        self.inner = inner
        self.url = inner.url

    def append(
        self,
        source: Source,
        segments: Mapping[str, Block],
        directory: Mapping[str, str],
        tiles: Mapping[str, TileWrite] | None = None,
        meta: Mapping[str, str] | None = None,
    ) -> dict[str, int]:
        """Refused: the store was opened read-only."""
        self._refuse("push facts")

    def read_tiles(self, requests: Sequence[TileRead]) -> list[Tiles]:
        """See ``OnlineStore.read_tiles``."""
        return self.inner.read_tiles(requests)

    def read(self, source: Source, entities: Sequence[str]) -> list[list[Block]]:
        """See ``OnlineStore.read``."""
        return self.inner.read(source, entities)

    def read_sources(
        self, requests: Sequence[tuple[Source, Sequence[str]]]
    ) -> list[list[list[Block]]]:
        """See ``OnlineStore.read_sources``."""
        return self.inner.read_sources(requests)

    def replace(
        self,
        source: Source,
        entity: str,
        count: int,
        merged: Block | None,
        directory: Mapping[str, str | None],
    ) -> bool:
        """Refused: the store was opened read-only."""
        self._refuse("compact")

    def directory(self, source: Source, fact_ids: Sequence[str]) -> list[str | None]:
        """See ``OnlineStore.directory``."""
        return self.inner.directory(source, fact_ids)

    def entities(self, source: Source) -> Iterator[str]:
        """See ``OnlineStore.entities``."""
        return self.inner.entities(source)

    def get_meta(self, name: str) -> str | None:
        """See ``OnlineStore.get_meta``."""
        return self.inner.get_meta(name)

    def set_meta(self, name: str, value: str) -> None:
        """Refused: the store was opened read-only."""
        self._refuse("record metadata")

    def clear(self, source: Source) -> None:
        """Refused: the store was opened read-only."""
        self._refuse("clear a source")

    def entity_bytes(self, source: Source, entity: str) -> int:
        """See ``OnlineStore.entity_bytes``."""
        return self.inner.entity_bytes(source, entity)

    def close(self) -> None:
        """Close the store underneath."""
        self.inner.close()

    def _refuse(self, what: str) -> NoReturn:
        raise StorageError(
            f"cannot {what}: the online store {self.url} was opened read-only (a pure read "
            f"such as `parity get`); open it without read_only to write"
        )
