"""Readiness: does the online store hold what the fact log holds? (DESIGN.md time rule 6.)

Per source the store keeps, in its metadata, the **applied watermark**: the latest
``recorded_at`` of the fact versions it has applied (``materialize`` sets it from the fact log,
``push`` advances it). Compared with the latest ``recorded_at`` the fact log holds:

- a source whose fact log holds facts but whose store has applied none was **never
  materialized**: reads refuse with ``NotReadyError`` instead of answering empty-window values
  (zeros) as if they were known;
- a source whose fact log holds no facts needs no materialize (there is nothing to copy);
- a materialized source whose fact log holds facts recorded later than the watermark (facts
  ingested after the last materialize) is **behind**; ``readiness()`` reports it, and it is
  ``ready`` only while ``behind <= tolerance``. Reads are not refused for being behind.

Readiness is measured on ``recorded_at``: a bulk load whose ``recorded_at`` values all precede
the watermark does not show as behind. Run ``parity materialize`` after loading history.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from parity.definitions import FeatureSet, Source
from parity.errors import NotReadyError
from parity.factlog import FactLog
from parity.online.base import OnlineStore
from parity.online.state import OnlineState
from parity.timeutil import us_to_datetime

APPLIED = "applied:"  # meta key prefix: applied:<source> -> epoch us (empty: nothing applied)


@dataclass(frozen=True)
class SourceReadiness:
    """How far the online store holds one source's facts.

    ``watermark`` is the latest ``recorded_at`` applied (None: nothing applied);
    ``fact_log_latest`` the latest ``recorded_at`` in the fact log (None: no facts);
    ``behind`` how much later the fact log reaches than the watermark (None when the store
    applied nothing while the fact log holds facts); ``materialized`` is False exactly when
    the fact log holds facts the store never applied; ``ready`` is materialized and
    ``behind <= tolerance``.
    """

    source: str
    materialized: bool
    watermark: datetime | None
    fact_log_latest: datetime | None
    behind: timedelta | None
    ready: bool


def applied(store: OnlineStore, source: str) -> int | None:
    """The applied watermark of ``source`` in ``store`` (epoch us), None if nothing applied."""
    value = store.get_meta(APPLIED + source)
    return int(value) if value else None


def set_applied(state: OnlineState, source: Source, recorded: int | None) -> None:
    """Record ``recorded`` as the applied watermark of ``source`` (None: forget it)."""
    state.store.set_meta(APPLIED + source.name, "" if recorded is None else str(recorded))
    if recorded is None:
        state.ready_sources.discard(source.name)
        state.applied_marks.pop(source.name, None)
    else:
        state.ready_sources.add(source.name)
        state.applied_marks[source.name] = recorded


def applied_change(state: OnlineState, source: Source, recorded: int) -> dict[str, str]:
    """After a push of facts recorded up to ``recorded``: the metadata write that moves the
    applied watermark of ``source`` forward (empty when none). A write that carries it must
    then call ``note_applied``.

    A push into a source whose fact log holds facts the store never applied does not make it
    materialized: the history is still missing, so reads keep refusing until ``materialize``.
    """
    current = state.applied_marks.get(source.name)
    if current is None:
        current = applied(state.store, source.name)
    if current is None and fact_log_latest(state.fact_log, source) is not None:
        return {}
    if current is None or recorded > current:
        return {APPLIED + source.name: str(recorded)}
    return {}


def note_applied(state: OnlineState, source: Source, recorded: int) -> None:
    """Remember an applied watermark written by a push (see ``applied_change``)."""
    state.ready_sources.add(source.name)
    state.applied_marks[source.name] = recorded


def fact_log_latest(fact_log: FactLog, source: Source | str) -> int | None:
    """The latest ``recorded_at`` the fact log holds for ``source`` (epoch us; manifest only)."""
    files = fact_log.files(source)
    return max(f.max_recorded_at for f in files) if files else None


def source_readiness(state: OnlineState, source: Source) -> SourceReadiness:
    """The readiness of one source, measured now (see the module docstring)."""
    mark = applied(state.store, source.name)
    latest = fact_log_latest(state.fact_log, source)
    materialized = mark is not None or latest is None
    behind: timedelta | None
    if latest is None:
        behind = timedelta(0)
    elif mark is None:
        behind = None
    else:
        behind = timedelta(microseconds=max(latest - mark, 0))
    ready = (
        materialized and behind is not None and behind <= timedelta(microseconds=state.tolerance_us)
    )
    return SourceReadiness(
        source.name,
        materialized,
        None if mark is None else us_to_datetime(mark),
        None if latest is None else us_to_datetime(latest),
        behind,
        ready,
    )


def readiness(state: OnlineState) -> dict[str, SourceReadiness]:
    """The readiness of every source served, by source name."""
    return {name: source_readiness(state, src) for name, src in sorted(state.sources.items())}


def require_materialized(state: OnlineState, feature_sets: Iterable[FeatureSet]) -> None:
    """Refuse with NotReadyError if a source of ``feature_sets`` was never materialized.

    Cheap on the hot path: a source once seen materialized is remembered by this process.
    """
    for fs in feature_sets:
        served = state.plans.get(fs.name)  # its sources, computed once
        sources = [sp.source for sp in served.sources] if served is not None else fs.sources
        for source in sources:
            if source.name in state.ready_sources:
                continue
            if applied(state.store, source.name) is not None:
                state.ready_sources.add(source.name)
                continue
            latest = fact_log_latest(state.fact_log, source)
            if latest is None:
                continue  # no facts anywhere: the empty answer is the true one
            raise NotReadyError(
                f"feature set {fs.name!r} reads source {source.name!r}, which the online store "
                f"has never materialized, though the fact log holds its facts (recorded up to "
                f"{us_to_datetime(latest).isoformat()}); answering now would give empty-window "
                f"values (zeros) that are not true. Run `parity materialize {fs.name}`, then "
                f"ask again"
            )
