"""OnlineFeatures: the public face of the online path, composed of three smaller rooms.

- ``writer.Writer``: push, delete, buffering pushed facts into the fact log;
- ``reader.Reader``: get_features, get_features_batch, answer (with ``found``), validation;
- ``maintenance.Maintenance``: materialize, compact and evict, reset;

all over one ``state.OnlineState``; ``readiness`` says whether the store holds what the fact
log holds. Reads go store -> ``evaluate.prepare`` -> ``evaluate.evaluate_set``; writes go
``normalize_facts`` -> store (immediately visible) and -> a buffer that ``flush`` appends to
the fact log.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa

from parity.definitions import FeatureSet, Source
from parity.factlog import FactLog
from parity.facts import FactData
from parity.online.base import OnlineStore
from parity.online.bulk import Progress
from parity.online.maintenance import Maintenance, MaterializeReport
from parity.online.options import tolerance_us
from parity.online.reader import OnlineAnswer, Reader
from parity.online.readiness import SourceReadiness, applied, readiness
from parity.online.state import OnlineState, SetNames
from parity.online.writer import PushReport, Writer
from parity.timeutil import parse_duration, us_to_datetime

__all__ = ["MaterializeReport", "OnlineAnswer", "OnlineFeatures", "PushReport", "SetNames"]


class OnlineFeatures:
    """The feature sets' values served live from an online store.

    ``lookback`` bounds how far before the watermark (the latest ``recorded_at`` pushed) a
    request may ask and still get the exact offline answer; versions no request at or after
    ``watermark - lookback`` can need are evicted. ``lookback=None`` keeps everything.
    ``tolerance`` is how far the store may be behind the fact log and still be ``ready``
    (see ``readiness``). Facts pushed are buffered for the fact log and appended every
    ``flush_every`` facts or ``flush_seconds`` (checked on each push), and on ``flush()`` /
    ``close()``.
    """

    def __init__(
        self,
        store: OnlineStore,
        fact_log: FactLog,
        feature_sets: Sequence[FeatureSet],
        lookback: str | None = "1h",
        flush_every: int = 10_000,
        flush_seconds: float = 5.0,
        max_segments: int = 8,
        tolerance: str | timedelta | None = "0s",
    ) -> None:
        self._state = OnlineState(
            store,
            fact_log,
            feature_sets,
            lookback_us=parse_duration(lookback, "online lookback"),
            tolerance_us=tolerance_us(tolerance),
            max_segments=max_segments,
        )
        self._writer = Writer(self._state, flush_every, flush_seconds)
        self._reader = Reader(self._state)
        self._maintenance = Maintenance(self._state, self._writer.flush)

    # -- what it serves ---------------------------------------------------------------------

    @property
    def store(self) -> OnlineStore:
        """The store underneath."""
        return self._state.store

    @property
    def fact_log(self) -> FactLog:
        """The fact log pushes are appended to and materialize reads."""
        return self._state.fact_log

    @property
    def feature_sets(self) -> dict[str, FeatureSet]:
        """The feature sets served, by name."""
        return self._state.feature_sets

    @property
    def sources(self) -> dict[str, Source]:
        """The sources the store keeps, by name."""
        return self._state.sources

    @property
    def lookback_us(self) -> int | None:
        """The lookback in microseconds (None: keep everything)."""
        return self._state.lookback_us

    @property
    def flush_every(self) -> int:
        """Pushed facts buffered before they are appended to the fact log."""
        return self._writer.flush_every

    @property
    def watermark(self) -> int | None:
        """The latest ``recorded_at`` pushed or materialized (epoch us), capped at the clock."""
        return self._state.watermark

    @property
    def horizon(self) -> int | None:
        """The earliest request time (epoch us) answered exactly; None when nothing is evicted."""
        return self._state.horizon

    def readiness(self) -> dict[str, SourceReadiness]:
        """Per source served: materialized, applied watermark, fact log latest, behind, ready.

        Measured now, from the store's metadata and the fact log's manifests.
        """
        return readiness(self._state)

    def freshness(self, sources: Sequence[str]) -> dict[str, datetime | None]:
        """The applied watermark of each source (the newest ``recorded_at`` held online)."""
        out: dict[str, datetime | None] = {}
        for name in sources:
            mark = applied(self._state.store, name) if name in self._state.sources else None
            out[name] = None if mark is None else us_to_datetime(mark)
        return out

    # -- writing ----------------------------------------------------------------------------

    def push(
        self,
        source: str | Source,
        facts: FactData | Sequence[Mapping[str, Any]],
        now: datetime | None = None,
    ) -> PushReport:
        """Validate facts, make them visible to the very next request, and log them.

        See ``Writer.push``.
        """
        return self._writer.push(source, facts, now)

    def push_canonical(
        self, source: str | Source, facts: pa.Table, now: datetime | None = None
    ) -> PushReport:
        """Push canonical facts (a fact log's rows), tombstones included; see ``Writer``."""
        return self._writer.push_canonical(source, facts, now)

    def delete(
        self, source: str | Source, fact_ids: Sequence[str], now: datetime | None = None
    ) -> PushReport:
        """Tombstone facts from ``now`` on (rule 4); see ``Writer.delete``."""
        return self._writer.delete(source, fact_ids, now)

    def flush(self) -> None:
        """Append the buffered pushed facts to the fact log (one Parquet commit per source)."""
        self._writer.flush()

    # -- maintenance ------------------------------------------------------------------------

    def materialize(
        self, feature_sets: SetNames | None = None, progress: Progress | None = None
    ) -> MaterializeReport:
        """Rebuild the store from the fact log for ``feature_sets`` (all when None).

        ``progress(source, done, total)`` reports fact versions stored. See
        ``Maintenance.materialize``.
        """
        return self._maintenance.materialize(feature_sets, progress)

    def compact(self, source: str | Source | None = None) -> int:
        """Merge every entity's segments and evict what no request can need; see Maintenance."""
        return self._maintenance.compact(source)

    def reset(self, source: str | Source | None = None) -> None:
        """Empty the store of ``source`` (all when None) and forget its watermark; reads of a
        source whose fact log holds facts then refuse until ``materialize``."""
        self._maintenance.reset(source)

    # -- reading ----------------------------------------------------------------------------

    def get_features(self, feature_sets: SetNames, context: Mapping[str, Any]) -> dict[str, Any]:
        """The features of ``feature_sets`` for one context; see ``Reader.get_features``.

        NotReadyError (never zeros) when a source was never materialized.
        """
        return self._reader.get_features(feature_sets, context)

    def get_features_batch(self, feature_sets: SetNames, contexts: FactData) -> pa.Table:
        """Features for many contexts, the table ``training_set`` returns; see ``Reader``."""
        return self._reader.get_features_batch(feature_sets, contexts)

    def answer(self, feature_sets: SetNames, contexts: FactData) -> OnlineAnswer:
        """Features for many contexts and ``found`` per context; see ``OnlineAnswer``."""
        return self._reader.answer(feature_sets, contexts)

    # -- lifetime ---------------------------------------------------------------------------

    def close(self) -> None:
        """Flush the buffered facts to the fact log and close the store."""
        self.flush()
        self.store.close()

    def __enter__(self) -> OnlineFeatures:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
