"""What the writer, the reader and maintenance of one online path share.

``OnlineState`` holds the store, the fact log, the definitions served and the two clocks of
the online path: the **horizon watermark** (the latest ``recorded_at`` pushed, which bounds the
request times answered exactly once versions are evicted) and, per source, the **applied
watermark** kept in ``parity.online.readiness``. It owns no behaviour beyond name resolution.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import Union

from parity.definitions import FeatureSet, Source
from parity.errors import NotFoundError
from parity.factlog import FactLog
from parity.online.base import OnlineStore
from parity.online.evaluate import Retention, SetPlan, plan, retention

SetNames = Union[str, FeatureSet, Sequence[Union[str, FeatureSet]]]  # noqa: UP007
WATERMARK = "watermark"  # meta key of the horizon watermark (latest recorded_at pushed)


class OnlineState:
    """The shared state of one ``OnlineFeatures``; see the module docstring."""

    def __init__(
        self,
        store: OnlineStore,
        fact_log: FactLog,
        feature_sets: Sequence[FeatureSet],
        lookback_us: int | None,
        tolerance_us: int,
        max_segments: int,
    ) -> None:
        self.store = store
        self.fact_log = fact_log
        self.feature_sets = {fs.name: fs for fs in feature_sets}
        self.lookback_us = lookback_us
        self.tolerance_us = tolerance_us
        self.max_segments = max_segments
        self.sources: dict[str, Source] = {}
        for fs in feature_sets:
            for source in fs.sources:
                self.sources.setdefault(source.name, source)
        self.retention: dict[str, Retention] = {
            name: retention(source, feature_sets) for name, source in self.sources.items()
        }
        self.plans: dict[str, SetPlan] = {fs.name: plan(fs) for fs in feature_sets}
        stored = store.get_meta(WATERMARK)
        self.watermark: int | None = int(stored) if stored else None
        # Sources known to be materialized; only positive answers are cached, so a source
        # materialized by another process is noticed on the next request.
        self.ready_sources: set[str] = set()
        self.applied_marks: dict[str, int] = {}  # applied watermarks this process wrote or read
        self.tiled_sources: set[str] = set()  # sources whose tiles are complete (tileread)
        # False: every read evaluates raw facts (the baseline of benchmarks, and a diagnosis)
        self.read_tiles = True
        self.lock = threading.RLock()

    @property
    def horizon(self) -> int | None:
        """The earliest request time (epoch us) answered exactly; None when nothing is evicted."""
        if self.lookback_us is None or self.watermark is None:
            return None
        return self.watermark - self.lookback_us

    def advance(self, recorded: int) -> None:
        """Move the horizon watermark forward to ``recorded`` (never back)."""
        change = self.watermark_change(recorded)
        if change:
            self.store.set_meta(WATERMARK, change[WATERMARK])
            self.watermark = recorded

    def watermark_change(self, recorded: int) -> dict[str, str]:
        """The metadata write that moves the watermark to ``recorded`` (empty if not later);
        a write that carries it must then set ``self.watermark``."""
        if self.watermark is None or recorded > self.watermark:
            return {WATERMARK: str(recorded)}
        return {}

    def source(self, source: str | Source) -> Source:
        """The served source called ``source``; NotFoundError naming the known ones."""
        name = source if isinstance(source, str) else source.name
        if name not in self.sources:
            raise NotFoundError(
                f"no feature set served online reads source {name!r}; the online store keeps "
                f"the sources {', '.join(sorted(self.sources)) or '(none)'}"
            )
        return self.sources[name]

    def resolve(self, feature_sets: SetNames) -> list[FeatureSet]:
        """The served feature sets named by ``feature_sets`` (names or objects)."""
        items: Iterable[str | FeatureSet]
        items = [feature_sets] if isinstance(feature_sets, (str, FeatureSet)) else feature_sets
        out = []
        for item in items:
            name = item if isinstance(item, str) else item.name
            if name not in self.feature_sets:
                raise NotFoundError(
                    f"no feature set {name!r} is served online; known: "
                    f"{', '.join(sorted(self.feature_sets)) or '(none)'}"
                )
            out.append(self.feature_sets[name])
        return out
