"""The small contracts serving depends on: a registry, online features, a feature log.

Serving codes against these Protocols, not against concrete classes, so that a test can pass
the real components and nothing in serving reaches into their internals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

import pyarrow as pa

from parity.featurelog import FeatureLogRecord, Receipt
from parity.featurelog.ledger import Outcome


class VersionInfo(Protocol):
    """What serving reads of a registered model version."""

    @property
    def version(self) -> int: ...

    @property
    def feature_sets(self) -> dict[str, str]: ...


class ModelRegistry(Protocol):
    """The registry calls a model slot and the admin endpoints make."""

    def get(self, name: str, ref: int | str | None = None) -> VersionInfo:
        """The version ``ref`` (a number or an alias) of model ``name``."""
        ...

    def load(self, name: str, ref: int | str | None = None) -> Any:
        """The model object of that version (verified by the registry before deserialising)."""
        ...

    def aliases(self, name: str) -> dict[str, int]:
        """Alias -> version for model ``name``."""
        ...

    def list_models(self) -> list[str]:
        """Every registered model name."""
        ...

    def set_alias(self, name: str, alias: str, version: int, *, reason: str | None = None,
                  actor: str | None = None) -> Any:
        """Point ``alias`` at ``version``."""
        ...


class OnlineAnswerLike(Protocol):
    """``parity.online.OnlineAnswer``: the feature table and, per context, whether the entity
    was ever seen and what each live source served (empty without live sources)."""

    @property
    def table(self) -> pa.Table: ...

    @property
    def found(self) -> list[bool]: ...

    @property
    def live(self) -> list[dict[str, Any]]: ...


class SourceReadinessLike(Protocol):
    """``parity.online.SourceReadiness``: how far one source is materialized."""

    @property
    def source(self) -> str: ...

    @property
    def materialized(self) -> bool: ...

    @property
    def watermark(self) -> datetime | None: ...

    @property
    def behind(self) -> timedelta | None: ...

    @property
    def ready(self) -> bool: ...


class OnlineReader(Protocol):
    """The online feature calls serving makes (``parity.online.OnlineFeatures``)."""

    def answer(self, feature_sets: Sequence[str],
               contexts: Sequence[Mapping[str, Any]]) -> OnlineAnswerLike:
        """Features for many contexts; NotReadyError when a source was never materialized."""
        ...

    def readiness(self) -> Mapping[str, SourceReadinessLike]:
        """Per source: materialized, watermark, how far behind the fact log, ready."""
        ...


class FeatureLog(Protocol):
    """The feature log calls serving makes (``parity.featurelog.FeatureLogWriter``)."""

    last_error: str | None
    failing_since: float | None

    def enqueue(self, record: FeatureLogRecord, flush: bool = False) -> Receipt:
        """Queue a record; say whether it was queued (with its ordinal), dropped or sampled out."""
        ...

    def wait_durable(self, ordinals: list[int], timeout: float | None = None) -> list[Outcome]:
        """Wait for ordinals to be fsynced; each one's outcome."""
        ...

    def stats(self) -> dict[str, int]:
        """Monitoring counters."""
        ...

    def close(self, timeout: float | None = None) -> None:
        """Write, fsync and seal what is queued; stop."""
        ...
