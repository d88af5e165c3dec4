"""Issue 13, item 5: a ``last_k`` over an archived source is the same list from the archive's
live interface, the archive's batch interface, the online store and the Time Machine."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

import parity as pt
from parity.archive import Archive, sync, training_set
from parity.engines.duckdb import DuckDBEngine
from parity.online import open_online
from tests.conformance import PLAY_COLUMNS, frame, play, plays, ts

LAST = pt.FeatureSet(
    "recent", plays.entity, [pt.Aggregate("last_titles", plays, "last_k", "title", k=3)]
)


def test_last_k_is_the_same_on_every_path(archive: Archive, tmp_path: Path) -> None:
    archive.append(
        plays,
        frame(
            [
                play(1, 1, title="a"),
                play(1, 2, title="b", late=4),  # late: known at 6h
                play(1, 3, title="c", fact_id="c"),
                play(1, 3, title="d", fact_id="b"),  # a tie on both times: fact id orders
                play(1, 4, title="e", fact_id="e"),
            ],
            PLAY_COLUMNS,
        ),
    )
    archive.append(plays, frame([play(1, 3, title="C", late=2, fact_id="c")], PLAY_COLUMNS))
    archive.delete(plays, ["e"], recorded_at=ts(7))
    log = pt.FactLog(tmp_path / "facts")
    sync(archive, log)
    online = open_online("memory://", log, [LAST], lookback=None)
    online.materialize()
    engine = DuckDBEngine(memory_limit="1GB", threads=1)
    for hour in (3.5, 4.5, 5.5, 6.5, 8):
        live = archive.latest(plays, 1, 3, at=ts(hour)).column("title").to_pylist()
        ctx = pd.DataFrame({"member_id": [1], "at": [ts(hour)]})
        batch = training_set(archive, [LAST], ctx).column("last_titles").to_pylist()[0]
        served = online.get_features([LAST], {"member_id": 1, "at": ts(hour)})["last_titles"]
        offline = engine.training_set(ctx, [LAST], log).column("last_titles").to_pylist()[0]
        assert live == batch == served == offline, hour
    assert archive.latest(plays, 1, 3, at=ts(6.5)).column("title").to_pylist() == ["e", "C", "d"]
    assert archive.latest(plays, 1, 3, at=ts(8)).column("title").to_pylist() == ["C", "d", "b"]
    online.close()
