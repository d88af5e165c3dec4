"""The in-process publication store: dicts behind one lock (tests, notebooks)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

from parity.errors import StateError
from parity.hulk.stores.base import Row


class MemoryPublicationStore:
    """Publications in this process only; every method holds one lock, so reads are atomic."""

    def __init__(self) -> None:
        self.url = "memory://"
        self._lock = threading.Lock()
        self._rows: dict[tuple[str, int], dict[str, bytes]] = {}
        self._manifests: dict[str, dict[int, str]] = {}
        self._live: dict[str, int | None] = {}
        self._counter: dict[str, int] = {}

    def allocate_version(self, name: str) -> int:
        """See PublicationStore."""
        with self._lock:
            self._counter[name] = self._counter.get(name, 0) + 1
            return self._counter[name]

    def write_rows(self, name: str, version: int, rows: Sequence[Row]) -> None:
        """See PublicationStore."""
        with self._lock:
            self._rows.setdefault((name, version), {}).update(rows)

    def read_rows(self, name: str, version: int, keys: Sequence[str]) -> list[bytes | None]:
        """See PublicationStore."""
        with self._lock:
            data = self._rows.get((name, version), {})
            return [data.get(k) for k in keys]

    def read_live(self, name: str, keys: Sequence[str]) -> tuple[int | None, list[bytes | None]]:
        """See PublicationStore."""
        with self._lock:
            version = self._live.get(name)
            if version is None:
                return None, [None] * len(keys)
            data = self._rows.get((name, version), {})
            return version, [data.get(k) for k in keys]

    def iter_keys(self, name: str, version: int, batch_size: int = 10_000) -> Iterator[list[str]]:
        """See PublicationStore."""
        with self._lock:
            keys = list(self._rows.get((name, version), {}))
        for start in range(0, len(keys), batch_size):
            yield keys[start : start + batch_size]

    def count_rows(self, name: str, version: int) -> int:
        """See PublicationStore."""
        with self._lock:
            return len(self._rows.get((name, version), {}))

    def put_manifest(self, name: str, version: int, manifest: str) -> None:
        """See PublicationStore."""
        with self._lock:
            self._manifests.setdefault(name, {})[version] = manifest

    def get_manifest(self, name: str, version: int) -> str | None:
        """See PublicationStore."""
        with self._lock:
            return self._manifests.get(name, {}).get(version)

    def versions(self, name: str) -> list[int]:
        """See PublicationStore."""
        with self._lock:
            return sorted(self._manifests.get(name, {}))

    def names(self) -> list[str]:
        """See PublicationStore."""
        with self._lock:
            return sorted(n for n, m in self._manifests.items() if m)

    def live_version(self, name: str) -> int | None:
        """See PublicationStore."""
        with self._lock:
            return self._live.get(name)

    def swap(self, name: str, expected: int | None, version: int | None) -> bool:
        """See PublicationStore."""
        with self._lock:
            if self._live.get(name) != expected:
                return False
            self._live[name] = version
            return True

    def drop_version(self, name: str, version: int) -> None:
        """See PublicationStore."""
        with self._lock:
            if self._live.get(name) == version:
                raise StateError(f"publication {name!r} version {version} is live; "
                                 f"swap to another version before dropping it")
            self._rows.pop((name, version), None)
            self._manifests.get(name, {}).pop(version, None)

    def close(self) -> None:
        """Nothing to release."""
