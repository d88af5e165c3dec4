"""Live sources on the online path: call the service at request time, or fall back.

``live_read`` stands in for ``OnlineStore.read_sources``: segments of ordinary sources come
from the store; for a live source each entity's service is called (its timeout applies) and a
valid answer becomes a one-version ``Block`` with ``event_time = recorded_at = t - 1 us`` (``t``
the request time), built by the same code as the snapshot job's facts. The reader's evaluation
then applies unchanged: the same Lookups and transforms as offline. When the call fails,
``fallback="snapshot"`` serves the latest stored snapshot (the store's segments of the source,
materialized like any source) and ``fallback="none"`` serves no version at all, so the features
are null: never a made-up value. What was used, with the latency, is returned per entity
(``LiveRead.status``) for the feature log, and counted in ``parity_live_source_calls``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from parity.definitions import Source
from parity.snapshot.live import CallResult, LiveSource
from parity.snapshot.rows import snapshot_facts

if TYPE_CHECKING:
    from parity.online.base import Block, OnlineStore

Used = Literal["live", "fallback_snapshot", "fallback_none"]

try:
    from prometheus_client import Counter

    LIVE_CALLS: Any = Counter("parity_live_source_calls",
                              "Live-source calls on the online path, by what was served",
                              ["source", "used"])
except ImportError:  # pragma: no cover - the serve extra is not installed
    LIVE_CALLS = None

_FANOUT = ThreadPoolExecutor(32, thread_name_prefix="parity-live-read")


@dataclass(frozen=True)
class LiveStatus:
    """What the online path used for one live source and entity, and how long the call took."""

    used: Used
    latency_ms: float
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able form, as the feature log stores it."""
        return {"used": self.used, "latency_ms": round(self.latency_ms, 3), "detail": self.detail}


@dataclass
class LiveRead:
    """Segments per request (as ``read_sources``), and per entity id each live source's status."""

    blocks: list[list[list[Block]]]
    status: dict[str, dict[str, LiveStatus]] = field(default_factory=dict)

    def annotate(self, entities: Sequence[str], rows: list[dict[str, Any]]) -> None:
        """Add ``{live source: status dict}`` of ``entities[i]`` to ``rows[i]`` (no-op if none)."""
        if not self.status:
            return
        for ident, row in zip(entities, rows):
            for name, status in self.status.get(ident, {}).items():
                row[name] = status.as_dict()


def live_read(
    store: OnlineStore, requests: Sequence[tuple[Source, Sequence[str]]], t: int
) -> LiveRead:
    """``store.read_sources(requests)``, with live sources called at request time ``t`` (us)."""
    if not any(isinstance(source, LiveSource) for source, _ in requests):
        return LiveRead(store.read_sources(requests))
    stored_requests = [(s, e) for s, e in requests if not isinstance(s, LiveSource)]
    stored = iter(store.read_sources(stored_requests)) if stored_requests else iter(())
    out = LiveRead([])
    for source, entities in requests:
        if not isinstance(source, LiveSource):
            out.blocks.append(next(stored))
            continue
        results = _call_all(source, entities)
        per_entity: list[list[Block]] = []
        failed = [e for e, r in zip(entities, results) if r.status != "ok"]
        fallback = (
            dict(zip(failed, store.read(source, failed)))
            if failed and source.fallback == "snapshot" else {}
        )
        for ident, result in zip(entities, results):
            if result.status == "ok" and result.row is not None:
                per_entity.append([_block(source, ident, result.row, t)])
                used: Used = "live"
            elif source.fallback == "snapshot":
                per_entity.append(fallback[ident])
                used = "fallback_snapshot"
            else:
                per_entity.append([])
                used = "fallback_none"
            out.status.setdefault(ident, {})[source.name] = LiveStatus(
                used, result.latency_s * 1e3, result.detail[:200]
            )
            if LIVE_CALLS is not None:
                LIVE_CALLS.labels(source.name, used).inc()
        out.blocks.append(per_entity)
    return out


def _call_all(source: LiveSource, entities: Sequence[str]) -> list[CallResult]:
    contexts = [_context(source, ident) for ident in entities]
    if len(contexts) <= 1:
        return [source.fetch(c) for c in contexts]
    return list(_FANOUT.map(source.fetch, contexts))


def _context(source: LiveSource, ident: str) -> dict[str, Any]:
    return dict(zip(source.entity.keys, json.loads(ident)))


def _block(source: LiveSource, ident: str, row: dict[str, Any], t: int) -> Block:
    from parity.online.routing import to_block  # not at the top: parity.online imports us

    key = _context(source, ident)
    facts = snapshot_facts(source, [(key, row, t - 1, f"live:{ident}")], normalize=False)
    block = to_block(source, facts)
    block.ordered = block.unique_ids = True  # one version
    return block
