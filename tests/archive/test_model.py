"""Stored rows round-trip canonical facts exactly (keys, nulls, floats to the bit, timestamps)."""

from __future__ import annotations

from datetime import datetime, timezone

import pyarrow as pa

import parity as pt
from parity.archive.model import entity_id, entity_ids, to_rows, to_table
from parity.facts import normalize_facts

UTC = timezone.utc


def test_round_trip_and_entity_ids() -> None:
    pair = pt.Entity("pair", {"a": int, "b": int})
    named = pt.Entity("named", {"country": str, "n": int})
    when = datetime(2024, 3, 1, 12, 30, 0, 123456, tzinfo=UTC)
    for entity, keys in ((pair, [(1, -2), (30, 4)]), (named, [('g"b', 7), ("é", 0)])):
        source = pt.EventSource(
            f"s_{entity.name}", entity, {"x": float, "s": str, "t": "timestamp", "ok": bool}
        )
        rows = [
            {
                **dict(zip(entity.keys, key, strict=True)),
                "x": x,
                "s": s,
                "t": t,
                "ok": ok,
                "event_time": when,
            }
            for key, x, s, t, ok in zip(
                keys, [0.1 + 0.2, None], ["a\nb", None], [when, None], [True, None], strict=True
            )
        ]
        facts = normalize_facts(source, pa.Table.from_pylist(rows))
        stored = to_rows(source, facts)
        assert [r.entity for r in stored] == [entity_id(k) for k in keys]
        assert entity_ids(source, facts) == [entity_id(k) for k in keys]
        back = to_table(source, stored)
        assert back.equals(facts)
        assert back.column("x").to_pylist()[0] == 0.1 + 0.2  # bit for bit
