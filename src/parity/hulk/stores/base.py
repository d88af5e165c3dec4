"""The publication store contract: versioned key -> bytes, manifests, and one atomic pointer.

A backend stores, per publication name:

- rows of each version (``key -> value bytes``), written in batches and never changed after;
- one manifest per version (JSON text, see ``parity.hulk.manifest``);
- the live pointer: which version readers get. ``swap`` moves it with compare-and-set, so two
  publishers cannot both think they moved it; ``read_live`` reads the pointer and the values
  in one atomic step, so a reader never mixes versions and never reads a version while it is
  being garbage-collected.

Orchestration (validation, rollback choice, GC policy, rate limits) lives in
``parity.hulk.publisher``; a store only stores. Every backend passes ``tests/hulk``'s
conformance suite.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

Row = tuple[str, bytes]


@runtime_checkable
class PublicationStore(Protocol):
    """Versioned publications in one backend (memory, SQLite, Redis)."""

    url: str

    def allocate_version(self, name: str) -> int:
        """A new version number for ``name``, greater than any given before (atomic)."""
        ...

    def write_rows(self, name: str, version: int, rows: Sequence[Row]) -> None:
        """Store ``rows`` under ``version``; a key written twice keeps the last value."""
        ...

    def read_rows(self, name: str, version: int, keys: Sequence[str]) -> list[bytes | None]:
        """The stored bytes of each key in ``version`` (None where the key is absent)."""
        ...

    def read_live(self, name: str, keys: Sequence[str]) -> tuple[int | None, list[bytes | None]]:
        """The live version and each key's bytes in it, read atomically (one version)."""
        ...

    def iter_keys(self, name: str, version: int, batch_size: int = 10_000) -> Iterator[list[str]]:
        """Every key of ``version``, in batches, in no particular order."""
        ...

    def count_rows(self, name: str, version: int) -> int:
        """How many keys ``version`` holds."""
        ...

    def put_manifest(self, name: str, version: int, manifest: str) -> None:
        """Store (or replace) the manifest of ``version``."""
        ...

    def get_manifest(self, name: str, version: int) -> str | None:
        """The manifest of ``version``, None if there is none."""
        ...

    def versions(self, name: str) -> list[int]:
        """Versions of ``name`` that have a manifest, ascending."""
        ...

    def names(self) -> list[str]:
        """Every publication name with at least one version, sorted."""
        ...

    def live_version(self, name: str) -> int | None:
        """The version readers get now (None before the first swap)."""
        ...

    def swap(self, name: str, expected: int | None, version: int | None) -> bool:
        """Point ``name`` at ``version`` if it points at ``expected`` now; True if it moved."""
        ...

    def drop_version(self, name: str, version: int) -> None:
        """Delete the rows and the manifest of ``version`` (never the live one: the caller
        checks; the store refuses too)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
