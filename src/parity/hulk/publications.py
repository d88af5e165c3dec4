"""``Publications``: the one object an application or a job uses, over one store.

    pubs = Publications(open_publication_store("sqlite:///srv/data/publications.db"))
    pubs.publish("scores", table, key_columns=["customer_id"], fallback=Fallback.previous())
    pubs.lookup("scores", 12347)          # LookupResult(value=0.83, version=4, found=True)
    pubs.rollback("scores")

It composes the write path (``Publisher``) and the read path (``PublicationReader``); the
reader's shadow monitor rolls back through the publisher.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from parity.hulk.alerts import AlertChannel
from parity.hulk.fallback import Computer, Fallback
from parity.hulk.manifest import Manifest
from parity.hulk.publisher import OUTPUT, Data, Publisher, PublishReport
from parity.hulk.reader import LookupResult, PublicationReader
from parity.hulk.shadow import ShadowPolicy
from parity.hulk.stores.base import PublicationStore
from parity.hulk.validation import ValidationPolicy


class Publications:
    """Publish, look up, roll back and garbage-collect publications in ``store``.

    ``shadow``: the shadow policy for newly swapped versions (``None`` turns shadowing off).
    ``computers``: on-demand computers for publications whose fallback is ``compute``.
    Other options go to ``Publisher`` (``keep``, ``rows_per_second``, ``write_batch``,
    ``policy``).
    """

    def __init__(self, store: PublicationStore, *, policy: ValidationPolicy | None = None,
                 keep: int = 3, rows_per_second: float | None = None, write_batch: int = 5_000,
                 shadow: ShadowPolicy | None = ShadowPolicy(),
                 computers: Mapping[str, Computer] | None = None,
                 alerts: AlertChannel | None = None) -> None:
        self.store = store
        self.publisher = Publisher(store, policy=policy, keep=keep,
                                   rows_per_second=rows_per_second, write_batch=write_batch,
                                   alerts=alerts)
        self.reader = PublicationReader(store, computers=computers, shadow=shadow,
                                        rollback=self._shadow_rollback, alerts=alerts)

    def publish(self, name: str, data: Data, *, key_columns: Sequence[str],
                output: str = OUTPUT, fallback: Fallback | None = None,
                lineage: Mapping[str, Any] | None = None, policy: ValidationPolicy | None = None,
                progress: Callable[[int], None] | None = None) -> PublishReport:
        """See ``Publisher.publish``."""
        return self.publisher.publish(name, data, key_columns=key_columns, output=output,
                                      fallback=fallback, lineage=lineage, policy=policy,
                                      progress=progress)

    def lookup(self, name: str, key: Any) -> LookupResult:
        """See ``PublicationReader.lookup``."""
        return self.reader.lookup(name, key)

    def lookup_many(self, name: str, keys: Sequence[Any]) -> list[LookupResult]:
        """See ``PublicationReader.lookup_many``."""
        return self.reader.lookup_many(name, keys)

    def rollback(self, name: str, to: int | None = None, *, reason: str = "") -> int:
        """See ``Publisher.rollback``; returns the version now live."""
        return self.publisher.rollback(name, to, reason=reason or "manual rollback")

    def gc(self, name: str) -> list[int]:
        """See ``Publisher.gc``."""
        return self.publisher.gc(name)

    def names(self) -> list[str]:
        """Every publication name."""
        return self.store.names()

    def live_version(self, name: str) -> int | None:
        """The live version of ``name`` (None before the first swap)."""
        return self.store.live_version(name)

    def manifest(self, name: str, version: int | None = None) -> Manifest:
        """A version's manifest (default: the live one, else the newest)."""
        if version is None:
            version = self.store.live_version(name)
        if version is None:
            kept = self.store.versions(name)
            version = kept[-1] if kept else 0
        return self.publisher.manifest(name, version)

    def manifests(self, name: str) -> list[Manifest]:
        """Every kept version's manifest, oldest first."""
        return self.publisher.manifests(name)

    def add_computer(self, name: str, computer: Computer) -> None:
        """Use ``computer`` for ``name``'s ``compute`` fallback in this process."""
        self.reader.computers[name] = computer

    def close(self) -> None:
        """Close the store."""
        self.store.close()

    def _shadow_rollback(self, name: str, expected: int, reason: str) -> int:
        previous = self.publisher.manifest(name, expected).previous
        return self.publisher.rollback(name, previous, reason=reason, expected=expected)
