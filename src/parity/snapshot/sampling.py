"""Stratified sampling of contexts, deterministic under a seed, stored in the workspace.

``Sampler(strata=["country", "tenure_band"], rates={("UK", "new"): 0.5}, default_rate=0.1,
seed=7)`` chooses entities per stratum: with a rate, an entity is in iff its uniform draw
``u = sha256(seed, entity id)`` is below the rate (so a higher rate keeps every entity a lower
one kept); with a count, the ``n`` entities of the stratum with the smallest draws. The draw is
a hash, not Python's salted ``hash``, so the same seed and entities give the same sample in
every process. Strata values come from a table of entities, or from features of a feature set
as the Time Machine sees them at the sampling time (``sample_entities``).

A sample is written under ``data/snapshots/samples/<id>.parquet`` atomically (temp file, fsync,
rename): the entity keys, the strata columns, ``stratum`` (the values joined by "/") and ``at``
(the sampling time), so the snapshot job and later training sets can use it.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from parity.contexts import AT
from parity.definitions import Entity, FeatureSet
from parity.errors import ConfigError, NotFoundError, SchemaError
from parity.frames import DataInput, read_data
from parity.snapshot.live import LiveSource
from parity.snapshot.rows import entity_ident, write_parquet_atomic
from parity.timeutil import TIMESTAMP_TYPE, datetime_to_us, now_us, to_utc_datetime, us_to_datetime

if TYPE_CHECKING:
    from parity.workspace import Workspace

STRATUM = "stratum"
_META = b"parity.sample"
StratumKey = str | Sequence[Any]


@dataclass(frozen=True)
class Sample:
    """A stored sample: its id, when it was taken, and its rows (see the module docstring)."""

    id: str
    taken_at: datetime
    entity: str
    keys: tuple[str, ...]
    strata: tuple[str, ...]
    table: pa.Table
    path: Path | None = None

    def per_stratum(self) -> dict[str, int]:
        """How many contexts each stratum holds."""
        counts = pc.value_counts(self.table.column(STRATUM)).to_pylist()
        return {item["values"]: item["counts"] for item in sorted(
            counts, key=lambda c: str(c["values"]))}


def stratum_label(values: Sequence[Any]) -> str:
    """The label of a stratum: its values joined by '/' (null written ``null``)."""
    return "/".join("null" if v is None else str(v) for v in values)


def draw(seed: int, ident: str) -> float:
    """The deterministic uniform draw in [0, 1) of an entity id under ``seed``."""
    digest = hashlib.sha256(f"{seed}\x00{ident}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class Sampler:
    """Per-stratum rates or counts over entities; see the module docstring."""

    def __init__(
        self,
        strata: Sequence[str],
        rates: Mapping[StratumKey, float] | None = None,
        counts: Mapping[StratumKey, int] | None = None,
        default_rate: float | None = None,
        seed: int = 0,
    ) -> None:
        self.strata = tuple(strata)
        if isinstance(strata, str) or not all(isinstance(s, str) for s in self.strata):
            raise ConfigError(f"sampler: strata must be a list of column names, got {strata!r}")
        self.rates = {self._label(k): float(_rate(v, k)) for k, v in (rates or {}).items()}
        self.counts = {self._label(k): _count(v, k) for k, v in (counts or {}).items()}
        both = sorted(set(self.rates) & set(self.counts))
        if both:
            raise ConfigError(
                f"sampler: stratum {both[0]!r} has both a rate and a count; give one of them"
            )
        self.default_rate = None if default_rate is None else _rate(default_rate, "default")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ConfigError(f"sampler: seed must be an int, got {seed!r}")
        self.seed = seed

    def _label(self, key: StratumKey) -> str:
        if isinstance(key, str):
            return key
        values = list(key)
        if len(values) != len(self.strata):
            raise ConfigError(
                f"sampler: stratum {tuple(values)!r} has {len(values)} values but the strata are "
                f"{list(self.strata)}; give one value per stratum column"
            )
        return stratum_label(values)

    def select(self, entities: DataInput, keys: Sequence[str]) -> pa.Table:
        """The chosen rows of ``entities`` (keys and strata columns) plus ``stratum``.

        Each entity counts once (duplicates of a key are an error: which stratum would it be in?).
        """
        table = read_data(entities, "entities")
        for name in (*keys, *self.strata):
            if name not in table.column_names:
                raise SchemaError(
                    f"sampler: the entities have no column {name!r}; they hold "
                    f"{', '.join(table.column_names)}"
                )
        table = table.select([*keys, *(s for s in self.strata if s not in keys)])
        rows = table.to_pylist()
        idents = [entity_ident([row[k] for k in keys]) for row in rows]
        if len(set(idents)) != len(idents):
            dup = next(i for i, n in Counter(idents).items() if n > 1)
            raise SchemaError(
                f"sampler: entity {dup} appears twice in the entities; give each once"
            )
        labels = [stratum_label([row[s] for s in self.strata]) for row in rows]
        draws = [draw(self.seed, i) for i in idents]
        chosen: list[int] = []
        by_stratum: dict[str, list[int]] = {}
        for index, label in enumerate(labels):
            by_stratum.setdefault(label, []).append(index)
        for label, members in by_stratum.items():
            if label in self.counts:
                ranked = sorted(members, key=lambda i: (draws[i], idents[i]))
                chosen += ranked[: self.counts[label]]
                continue
            rate = self.rates.get(label, self.default_rate)
            if rate:
                chosen += [i for i in members if draws[i] < rate]
        chosen.sort()
        out = table.take(pa.array(chosen, pa.int64()))
        return out.append_column(STRATUM, pa.array([labels[i] for i in chosen], pa.string()))

    def sample(
        self,
        workspace: Workspace,
        entity: Entity,
        entities: DataInput,
        at: datetime | None = None,
        save: bool = True,
    ) -> Sample:
        """Choose from ``entities`` (keys + strata columns), store the sample, return it."""
        taken_us = now_us() if at is None else datetime_to_us(to_utc_datetime(at, "at"))
        chosen = self.select(entities, list(entity.keys))
        chosen = chosen.append_column(
            AT, pa.array([taken_us] * chosen.num_rows, pa.int64()).cast(TIMESTAMP_TYPE)
        )
        spec = {"entity": entity.name, "keys": list(entity.keys), "strata": list(self.strata),
                "seed": self.seed, "rates": self.rates, "counts": self.counts,
                "default_rate": self.default_rate, "taken_at": taken_us}
        digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode())
        for ident in chosen.column(STRATUM).to_pylist():
            digest.update(ident.encode())
        sample_id = f"sample-{us_to_datetime(taken_us):%Y%m%dT%H%M%S}-{digest.hexdigest()[:8]}"
        chosen = chosen.replace_schema_metadata({_META: json.dumps({**spec, "id": sample_id})})
        path = samples_dir(workspace) / f"{sample_id}.parquet" if save else None
        if path is not None:
            write_parquet_atomic(chosen, path)
        return Sample(sample_id, us_to_datetime(taken_us), entity.name, tuple(entity.keys),
                      self.strata, chosen, path)


def sample_entities(
    workspace: Workspace,
    feature_set: str | FeatureSet,
    entities: DataInput,
    strata: Sequence[str],
    at: datetime | None = None,
) -> pa.Table:
    """``entities`` (key columns) with the strata features as the Time Machine gives them at ``at``.

    The strata are feature names of ``feature_set`` (lookups of entity attributes, or transforms
    such as a tenure band); ``at`` defaults to now.
    """
    fs = workspace.definitions.feature_set(feature_set)
    for name in strata:
        fs.feature(name)  # NotFoundError-like DefinitionError naming the feature
    keys = read_data(entities, "entities").select(list(fs.entity.keys))
    when = now_us() if at is None else datetime_to_us(to_utc_datetime(at, "at"))
    contexts = keys.append_column(
        AT, pa.array([when] * keys.num_rows, pa.int64()).cast(TIMESTAMP_TYPE)
    )
    table = workspace.training_set(contexts, [fs])
    return table.select([*fs.entity.keys, *strata])


def known_entities(workspace: Workspace, feature_set: str | FeatureSet) -> pa.Table:
    """Every entity key found in the fact log of the feature set's stored (not live) sources."""
    fs = workspace.definitions.feature_set(feature_set)
    keys = list(fs.entity.keys)
    parts = [
        pq.read_table(path, columns=keys)
        for source in fs.sources if not isinstance(source, LiveSource)
        for path in workspace.fact_log.paths(source)
    ]
    if not parts:
        raise NotFoundError(
            f"feature set {fs.name!r}: its sources hold no facts, so there are no entities to "
            f"sample; ingest them first, or pass the entities (--entities FILE)"
        )
    table = pa.concat_tables(parts)
    return table.group_by(keys).aggregate([]).sort_by([(k, "ascending") for k in keys])


def samples_dir(workspace: Workspace) -> Path:
    """Where samples are stored."""
    return workspace.data_dir / "snapshots" / "samples"


def load_sample(workspace: Workspace, sample_id: str) -> Sample:
    """A stored sample; NotFoundError naming the stored ones otherwise."""
    path = samples_dir(workspace) / f"{sample_id}.parquet"
    if not path.exists():
        known = sorted(p.stem for p in samples_dir(workspace).glob("sample-*.parquet"))
        raise NotFoundError(
            f"no sample {sample_id!r}; stored samples: {', '.join(known) or '(none)'}; "
            f"take one with `parity snapshot sample`"
        )
    table = pq.read_table(path)
    spec = json.loads((table.schema.metadata or {})[_META])
    return Sample(spec["id"], us_to_datetime(spec["taken_at"]), spec["entity"],
                  tuple(spec["keys"]), tuple(spec["strata"]), table, path)


def _rate(value: Any, key: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ConfigError(f"sampler: rate for {key!r} must be a number in [0, 1], got {value!r}")
    return float(value)


def _count(value: Any, key: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"sampler: count for {key!r} must be an int >= 0, got {value!r}")
    return value
