"""Precompute on a real workspace: keys from the fact log, features from the Time Machine."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

import parity as pt
from parity.errors import InputError
from parity.hulk import Fallback, Keys, OnDemand, Precompute, open_publications, publish
from tests.hulk.helpers import AT


def spend(table: pa.Table) -> Any:
    return table.column("spend_30d")


def test_keys_from_a_source_are_the_entities_visible_at_the_moment(ws: pt.Workspace) -> None:
    job = Precompute("spend", keys=Keys.from_source("purchases"), fn=spend,
                     feature_sets=["customer_features"], at=AT)
    assert job.key_table(ws).column("customer_id").to_pylist() == [1, 2, 3]


def test_published_outputs_equal_the_time_machine_at_the_moment(ws: pt.Workspace) -> None:
    job = Precompute("spend", keys=Keys.from_source("purchases"), fn=spend,
                     feature_sets=["customer_features"], at=AT, batch_size=2)
    progress: list[tuple[int, int]] = []
    batches = list(job.batches(ws, lambda done, total: progress.append((done, total))))
    assert [b.num_rows for b in batches] == [2, 1]
    assert progress == [(0, 3), (2, 3), (3, 3)]
    report = publish(ws, job, show_progress=False)
    assert report.live, report.validation.headline()
    expected = ws.training_set(pd.DataFrame({"customer_id": [1, 2, 3], "at": [pd.Timestamp(AT)] * 3}),
                               "customer_features").column("spend_30d").to_pylist()
    pubs = open_publications(ws)
    assert [r.value for r in pubs.lookup_many("spend", [1, 2, 3])] == expected == [15.0, 7.0, 0.0]
    lineage = report.manifest.lineage
    fs = ws.definitions.feature_set("customer_features")
    assert lineage["feature_sets"] == {"customer_features": fs.version}
    assert lineage["fact_log"]["purchases"]["rows"] == 5
    assert lineage["at"] == "2024-02-01T00:00:00+00:00"
    assert "code_version" in lineage and lineage["keys"]["source"] == "purchases"
    assert (ws.data_dir / "publications.db").exists()


def test_keys_from_a_query_and_ranked_outputs(ws: pt.Workspace) -> None:
    def similar(table: pa.Table) -> list[list[dict[str, Any]]]:
        return [[{"item": "a" if i != "a" else "b", "score": 0.5}] for i in
                table.column("item").to_pylist()]

    job = Precompute("similar_items", keys=Keys.from_query(
        "SELECT DISTINCT item FROM purchases ORDER BY item"), fn=similar, at=AT)
    report = publish(ws, job, show_progress=False)
    assert report.manifest.key_columns == ["item"]
    assert report.manifest.summary.rows == 3  # items a, b, c: the one bought later is unseen
    assert open_publications(ws).lookup("similar_items", "c").value == [{"item": "a", "score": 0.5}]
    with pytest.raises(InputError, match="key query failed"):
        Precompute("x", keys=Keys.from_query("SELECT nope FROM purchases"), fn=similar,
                   at=AT).key_table(ws)


def test_fn_must_return_one_output_per_row(ws: pt.Workspace) -> None:
    job = Precompute("bad", keys=pd.DataFrame({"customer_id": [1, 2]}), fn=lambda t: [1.0], at=AT)
    with pytest.raises(InputError, match="one output per row"):
        job.run(ws)


def test_a_new_key_is_computed_on_demand_by_the_same_function(ws: pt.Workspace) -> None:
    job = Precompute("spend", keys=Keys.from_source("purchases"), fn=spend,
                     feature_sets=["customer_features"], at=AT)
    publish(ws, job, fallback=Fallback.compute(), show_progress=False)
    ws.online.materialize()
    pubs = open_publications(ws)
    fs = ws.definitions.feature_set("customer_features")
    pubs.add_computer("spend", OnDemand(spend, ws.online, [fs]))
    result = pubs.lookup("spend", 4)  # bought after the publication moment: a gap
    assert (result.found, result.fallback) == (False, "compute")
    assert result.value == ws.online.get_features(fs, {"customer_id": 4})["spend_30d"]
