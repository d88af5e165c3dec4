"""Precompute: outputs for every key, by brute force, with the Time Machine's features.

    job = Precompute("churn_scores", keys=Keys.from_source("purchases"), fn=predictor,
                     feature_sets=["customer_features"], at=now)
    for batch in job.batches(ws):   # Arrow tables: key columns + "output"
        ...

Keys come from a source's entities (those with a fact visible at ``at``), a table, or a
DuckDB query over the fact log in which every source is a view of its facts visible at
``at``. Features come from ``ws.training_set`` with every key's context at ``at``: the same
point-in-time features training used, as of the publication moment, so the published output
is what the model would have answered online at ``at``. Work streams in batches of
``batch_size`` keys; nothing holds all outputs at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
import pyarrow as pa

from parity._duck import connect, query_arrow
from parity.definitions import EVENT_TIME, RECORDED_AT, FeatureSet
from parity.errors import ConfigError, InputError, SchemaError
from parity.hulk.values import normalize_output
from parity.timeutil import UTC, to_utc_datetime

OUTPUT = "output"
Progress = Callable[[int, int], None]
"""``progress(keys done, keys in total)``."""


@dataclass(frozen=True)
class Keys:
    """Where a precompute's keys come from: ``from_source``, ``from_table``, ``from_query``."""

    source: str | None = None
    table: pa.Table | None = None
    query: str | None = None

    @classmethod
    def from_source(cls, source: str) -> Keys:
        """Every entity of ``source`` with at least one fact visible at the moment."""
        return cls(source=source)

    @classmethod
    def from_table(cls, table: pa.Table | pd.DataFrame | Sequence[dict[str, Any]]) -> Keys:
        """The rows of a table of key columns (duplicates are kept: validation counts them)."""
        if isinstance(table, pd.DataFrame):
            return cls(table=pa.Table.from_pandas(table, preserve_index=False))
        if isinstance(table, pa.Table):
            return cls(table=table)
        return cls(table=pa.Table.from_pylist(list(table)))

    @classmethod
    def from_query(cls, sql: str) -> Keys:
        """A DuckDB query whose columns are the keys; each source is a view by its name."""
        return cls(query=sql)


class Precompute:
    """Outputs of ``fn`` for every key (see the module docstring).

    ``fn`` is a ``Predictor`` (anything with ``predict_table``) or a plain function of an
    Arrow table (key columns, ``at`` and the features) returning one output per row: a
    number, a label, a vector, or a ranked list of ``{"item", "score"}``. ``key_columns``
    defaults to the feature sets' entity keys, else to the key table's columns.
    """

    def __init__(self, name: str, *, keys: Keys | pa.Table | pd.DataFrame, fn: Any,
                 feature_sets: Sequence[str | FeatureSet] = (), at: datetime | str | None = None,
                 key_columns: Sequence[str] | None = None, batch_size: int = 50_000) -> None:
        if not (hasattr(fn, "predict_table") or callable(fn)):
            raise ConfigError(f"fn {fn!r} is neither a Predictor nor a function of a table")
        if batch_size < 1:
            raise ConfigError(f"batch_size={batch_size} must be at least 1")
        self.name = name
        self.keys = keys if isinstance(keys, Keys) else Keys.from_table(keys)
        self.fn = fn
        self.feature_sets = list(feature_sets)
        self.at = to_utc_datetime(at, "at") if at is not None else datetime.now(UTC)
        self.key_columns = list(key_columns) if key_columns else None
        self.batch_size = batch_size

    def resolve_feature_sets(self, ws: Any) -> list[FeatureSet]:
        """The feature sets as definitions of ``ws``."""
        return [ws.definitions.feature_set(fs) for fs in self.feature_sets]

    def key_table(self, ws: Any) -> pa.Table:
        """Every key to compute, as a table of key columns."""
        if self.keys.table is not None:
            table = self.keys.table
        elif self.keys.source is not None:
            source = ws.definitions.source(self.keys.source)
            listed = ", ".join(f'"{c}"' for c in source.entity.keys)
            table = self._query(ws, f'SELECT DISTINCT {listed} FROM "{source.name}" '
                                    f"ORDER BY {listed}")
        else:
            assert self.keys.query is not None
            table = self._query(ws, self.keys.query)
        columns = self.resolved_key_columns(ws, table)
        missing = [c for c in columns if c not in table.column_names]
        if missing:
            raise SchemaError(f"precompute {self.name!r}: the keys lack column(s) "
                              f"{', '.join(missing)}; they have {', '.join(table.column_names)}")
        return table.select(columns)

    def resolved_key_columns(self, ws: Any, table: pa.Table | None = None) -> list[str]:
        """The key columns: given, else the feature sets' entity keys, else the table's."""
        if self.key_columns:
            return self.key_columns
        sets = self.resolve_feature_sets(ws)
        if sets:
            return list(sets[0].entity.keys)
        if table is None:
            table = self.key_table(ws)
        return list(table.column_names)

    def _query(self, ws: Any, sql: str) -> pa.Table:
        con = connect(temp_directory=str(ws.data_dir / "tmp"))
        try:
            at = self.at.isoformat()
            for name in ws.fact_log.sources():
                paths = ws.fact_log.paths(name)
                if not paths:
                    continue
                files = ", ".join(f"'{p}'" for p in paths)
                con.execute(f'CREATE VIEW "{name}" AS SELECT * FROM read_parquet([{files}]) '
                            f"WHERE {EVENT_TIME} < TIMESTAMPTZ '{at}' "
                            f"AND {RECORDED_AT} < TIMESTAMPTZ '{at}'")
            try:
                return query_arrow(con, sql)
            except Exception as exc:  # DuckDB's errors: a bad query is the caller's to fix
                raise InputError(f"precompute {self.name!r}: the key query failed: {exc}; "
                                 f"sources are views named after them, holding the facts "
                                 f"visible at {at}") from None
        finally:
            con.close()

    def batches(self, ws: Any, progress: Progress | None = None) -> Iterator[pa.Table]:
        """Tables of key columns + ``output``, ``batch_size`` keys at a time."""
        keys = self.key_table(ws)
        sets = self.resolve_feature_sets(ws)
        total = keys.num_rows
        done = 0
        if progress:
            progress(0, total)
        for start in range(0, total, self.batch_size):
            chunk = keys.slice(start, self.batch_size)
            inputs = chunk.append_column("at", pa.array([self.at] * chunk.num_rows,
                                                         pa.timestamp("us", tz="UTC")))
            if sets:
                inputs = ws.training_set(inputs, sets)
            outputs = [normalize_output(v) for v in call_fn(self.fn, inputs)]
            yield chunk.append_column(OUTPUT, _output_array(outputs))
            done += chunk.num_rows
            if progress:
                progress(done, total)

    def run(self, ws: Any, progress: Progress | None = None) -> pa.Table:
        """Every output in one table (small publications, tests)."""
        parts = list(self.batches(ws, progress))
        if not parts:
            return self.key_table(ws).append_column(OUTPUT, pa.array([], pa.null()))
        return pa.concat_tables(parts, promote_options="permissive")


def call_fn(fn: Any, table: pa.Table) -> list[Any]:
    """``fn``'s outputs for the rows of ``table``: ``predict_table`` or a plain call."""
    raw = fn.predict_table(table) if hasattr(fn, "predict_table") else fn(table)
    outputs = raw.to_pylist() if hasattr(raw, "to_pylist") else list(raw)
    if len(outputs) != table.num_rows:
        raise InputError(f"fn returned {len(outputs)} outputs for {table.num_rows} rows; it "
                         f"must return one output per row, in order")
    return outputs


def _output_array(outputs: list[Any]) -> pa.Array:
    try:
        return pa.array(outputs)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise InputError(f"outputs cannot form one column ({exc}); return one kind of output "
                         f"(numbers, labels, vectors or ranked lists) for every key") from None
