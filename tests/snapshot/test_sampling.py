"""Stratified sampling: deterministic under a seed, per-stratum rates and counts, stored."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest

import parity as pt
from parity.snapshot import Sampler, load_sample, sample_entities
from parity.snapshot.sampling import known_entities
from tests.snapshot.workspace import T0, chosen, population

ROOT = Path(__file__).resolve().parents[2]


def test_the_same_seed_gives_the_same_sample_in_another_process() -> None:
    sampler = Sampler(["country"], default_rate=0.1, seed=11)
    here = chosen(sampler, population())
    code = (
        "from tests.snapshot.workspace import chosen, population;"
        "from parity.snapshot import Sampler;"
        "print(chosen(Sampler(['country'], default_rate=0.1, seed=11), population()))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}  # Python's own hash would differ
    there = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True,
                           capture_output=True, text=True).stdout
    assert there.strip() == str(here)
    assert chosen(Sampler(["country"], default_rate=0.1, seed=12), population()) != here


def test_per_stratum_rates_and_counts() -> None:
    sampler = Sampler(["country", "band"], rates={("UK", "new"): 1.0, "FR/new": 0.5},
                      counts={("DE", "loyal"): 7}, default_rate=0.0, seed=3)
    out = sampler.select(population(), ["customer_id"])
    counts = Counter(out.column("stratum").to_pylist())
    assert counts["UK/new"] == 500  # every one of the stratum
    assert 180 <= counts["FR/new"] <= 320  # 0.5 of 500, within ~6 sigma
    assert counts["DE/loyal"] == 7
    assert set(counts) == {"UK/new", "FR/new", "DE/loyal"}  # default 0: the rest not sampled
    for row in out.to_pylist():  # each row's label is its own strata values
        assert row["stratum"] == f"{row['country']}/{row['band']}"


def test_a_higher_rate_keeps_every_entity_a_lower_rate_kept() -> None:
    low = set(chosen(Sampler(["country"], default_rate=0.05, seed=1), population()))
    high = set(chosen(Sampler(["country"], default_rate=0.2, seed=1), population()))
    assert low < high


def test_sampler_mistakes_are_named() -> None:
    with pytest.raises(pt.ConfigError, match="rate for"):
        Sampler(["country"], rates={"UK": 1.5})
    with pytest.raises(pt.ConfigError, match="both a rate and a count"):
        Sampler(["country"], rates={"UK": 0.5}, counts={"UK": 3})
    with pytest.raises(pt.ConfigError, match="one value per stratum"):
        Sampler(["country", "band"], rates={("UK",): 0.5})
    with pytest.raises(pt.SchemaError, match="no column 'band'"):
        Sampler(["band"], default_rate=1).select(population().drop_columns(["band"]),
                                                 ["customer_id"])
    twice = pa.concat_tables([population(3), population(3)])
    with pytest.raises(pt.SchemaError, match="appears twice"):
        Sampler(["country"], default_rate=1).select(twice, ["customer_id"])


def test_strata_come_from_the_time_machine_and_the_sample_is_stored(
    workspace: pt.Workspace,
) -> None:
    entities = known_entities(workspace, "customers")
    assert entities.num_rows == 30
    table = sample_entities(workspace, "customers", entities, ["country", "tenure_band"], at=T0)
    assert set(table.column("tenure_band").to_pylist()) == {"new", "loyal"}
    early = sample_entities(workspace, "customers", entities, ["country"], at=T0.replace(year=2020))
    assert set(early.column("country").to_pylist()) == {None}  # profiles not known yet
    customer = workspace.definitions.entities["customer"]
    sample = Sampler(["country", "tenure_band"], default_rate=0.5, seed=2).sample(
        workspace, customer, table, at=T0)
    assert sample.path is not None and sample.path.exists()
    assert not list(sample.path.parent.glob(".*.tmp"))  # written atomically
    again = load_sample(workspace, sample.id)
    assert again.table.equals(sample.table.replace_schema_metadata(again.table.schema.metadata))
    assert again.taken_at == T0 and again.strata == ("country", "tenure_band")
    assert set(again.table.column("at").to_pylist()) == {T0}
    with pytest.raises(pt.NotFoundError, match="stored samples"):
        load_sample(workspace, "sample-nope")
