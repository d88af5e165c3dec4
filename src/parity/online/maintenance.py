"""Online maintenance: materialize from the fact log, compact and evict, reset.

``materialize`` is the only way a source whose history sits in the fact log becomes readable
online: it rebuilds the source from the fact log and records the applied watermark (see
``parity.online.readiness``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from parity.definitions import Source
from parity.online.bulk import Progress, load
from parity.online.readiness import fact_log_latest, set_applied
from parity.online.routing import compact_entity
from parity.online.state import WATERMARK, OnlineState, SetNames
from parity.online.tileread import mark_tiled
from parity.timeutil import now_us


@dataclass(frozen=True)
class MaterializeReport:
    """What a materialize did, per source: fact versions read from the fact log."""

    facts: dict[str, int]
    entities: dict[str, int]
    seconds: float


class Maintenance:
    """Materialize, compact, reset; see the module docstring."""

    def __init__(self, state: OnlineState, flush: Callable[[], None]) -> None:
        self.state = state
        self._flush = flush  # the writer's: pushed facts reach the fact log before a rebuild

    def materialize(
        self, feature_sets: SetNames | None = None, progress: Progress | None = None
    ) -> MaterializeReport:
        """Rebuild the online store from the fact log for the sources of ``feature_sets``.

        Use it to bootstrap a new store or to repair one. Buffered pushes are flushed first,
        so nothing pushed is lost. The fact log is streamed in batches and written in bulk
        (``parity.online.bulk``); ``progress(source, done, total)`` is called after each
        batch. Readers may see a source empty while it is rebuilt; it counts as not
        materialized until its rebuild has finished.
        """
        started = time.perf_counter()
        self._flush()
        state = self.state
        chosen = (
            state.resolve(feature_sets)
            if feature_sets is not None
            else list(state.feature_sets.values())
        )
        sources = {s.name: s for fs in chosen for s in fs.sources}
        counts: dict[str, int] = {}
        entities: dict[str, int] = {}
        with state.lock:
            for name, source in sources.items():
                latest = fact_log_latest(state.fact_log, source)
                if latest is not None:
                    state.advance(min(latest, now_us()))
                state.store.clear(source)
                set_applied(state, source, None)  # a crash mid-rebuild leaves it unmaterialized
                counts[name], entities[name] = load(state, source, progress)
                mark_tiled(state, source)  # every entity loaded got its tiles
                if latest is not None:
                    set_applied(state, source, latest)
        return MaterializeReport(counts, entities, time.perf_counter() - started)

    def compact(self, source: str | Source | None = None) -> int:
        """Merge every entity's segments into one and evict what no request can need.

        Runs over all sources when ``source`` is None; returns the entities left.
        """
        state = self.state
        chosen = [state.source(source)] if source is not None else list(state.sources.values())
        left = 0
        with state.lock:
            for src in chosen:
                for entity in list(state.store.entities(src)):
                    segments = state.store.read(src, [entity])[0]
                    left += compact_entity(state, src, entity, segments)
        return left

    def reset(self, source: str | Source | None = None) -> None:
        """Empty the store of ``source`` (every source served here when None).

        Its applied watermark is forgotten too: afterwards a source whose fact log holds facts
        is not materialized, and reads refuse until ``materialize`` runs again. Resetting
        every source also forgets the horizon watermark.
        """
        state = self.state
        chosen = [state.source(source)] if source is not None else list(state.sources.values())
        with state.lock:
            for src in chosen:
                state.store.clear(src)
                mark_tiled(state, src)  # empty, and every push from here on writes tiles
                set_applied(state, src, None)
            if source is None:
                state.watermark = None
                state.store.set_meta(WATERMARK, "")
