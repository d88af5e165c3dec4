"""Log and wait: turn the feature log into a training set once the labels have arrived.

For a prediction logged at ``t`` for some entity, the label aggregates the label events of the
same entity with ``event_time`` in ``(t, t + label_window]``: strictly after the prediction
(an event at ``t`` itself could not have been caused by it) and up to the end of the window.

- ``how="any"``: 1 if there is at least one such event, else 0 (int64);
- ``how="count"``: the number of such events (int64);
- ``how="sum:<column>"``: the sum of ``<column>`` over them, 0 when there are none.

A prediction whose window has not fully passed by ``now`` (``t + label_window > now``) is left
out: its label is not known yet, and writing 0 would silently teach the model that nothing
happened. ``now`` defaults to the latest label ``event_time``, on the grounds that the labels
are complete up to the last event they contain; pass the label source's real completeness
watermark when you know it (a daily batch that has landed up to midnight, say).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from parity._duck import connect, query_arrow
from parity.errors import DefinitionError, InputError, SchemaError
from parity.featurelog.columns import FEATURE_PREFIX, KEY_PREFIX, REQUEST_PREFIX
from parity.featurelog.compact import read_log
from parity.featurelog.layout import WORKER_COLUMN
from parity.timeutil import (
    datetime_to_us,
    normalize_timestamp_column,
    parse_duration,
    timestamp_to_us,
    to_utc_datetime,
)


def training_set_from_log(
    log: pa.Table | str | Path,
    labels: Any,
    *,
    keys: Sequence[str],
    label_window: str | timedelta = "30d",
    label_name: str = "label",
    label_event_time: str = "event_time",
    how: str = "any",
    now: datetime | str | None = None,
    model: str | None = None,
) -> pa.Table:
    """A training set from logged predictions (``log``: a ``read_log`` table or a log folder).

    ``labels`` is an Arrow table or pandas DataFrame with the ``keys`` columns and an aware
    ``label_event_time`` column. ``model`` keeps only that model's predictions. Returns, one
    row per labelled prediction ordered by time: the key columns, ``at`` (the prediction's
    time), the request fields and the features under their plain names, the label column,
    then ``request_id`` and ``model_version``, ordered by ``at`` then the log's order
    (``worker``, ``seq``). See the module docstring for the label rule.
    """
    window = parse_duration(label_window, "label_window")
    assert window is not None  # parse_duration only returns None for None
    table = log if isinstance(log, pa.Table) else read_log(log)
    if model is not None:
        table = table.filter(pc.equal(table.column("model"), model))
    label_table = _label_table(labels, keys, label_event_time, how)
    event_us = label_table.column("__et")
    now_us = _resolve_now(now, event_us)
    _check_log(table, keys, label_table)
    at_us = timestamp_to_us(table.column("logged_at"))
    table = table.filter(pc.less_equal(pc.add(at_us, window), now_us))
    label = _labels(table, label_table, keys, window, how)
    return _assemble(table, keys, label_name, label)


def _label_table(labels: Any, keys: Sequence[str], event_time: str, how: str) -> pa.Table:
    if not isinstance(labels, pa.Table):
        if not hasattr(labels, "columns"):
            raise InputError(f"labels: expected an Arrow table or a pandas DataFrame, "
                             f"got {type(labels).__name__}")
        labels = pa.Table.from_pandas(labels, preserve_index=False)
    value = _sum_column(how)
    needed = [*keys, event_time, *([value] if value else [])]
    missing = [c for c in needed if c not in labels.column_names]
    if missing:
        raise SchemaError(
            f"labels: missing column(s) {missing}; they have {labels.column_names}. Name the "
            f"event time with label_event_time= and the entity keys with keys="
        )
    columns = {k: labels.column(k) for k in keys}
    columns["__et"] = timestamp_to_us(normalize_timestamp_column(labels.column(event_time),
                                                                 event_time))
    if value:
        typ = labels.schema.field(value).type
        if not (pa.types.is_integer(typ) or pa.types.is_floating(typ)):
            raise SchemaError(f"labels: how='sum:{value}' needs a numeric column; "
                              f"{value!r} has type {typ}")
        columns["__v"] = labels.column(value)
    return pa.table(columns)


def _sum_column(how: str) -> str | None:
    if how in ("any", "count"):
        return None
    if how.startswith("sum:") and len(how) > 4:
        return how[4:]
    raise DefinitionError(
        f"how={how!r} is not a label rule; use 'any' (1 if an event follows, else 0), 'count' "
        f"or 'sum:<column>'"
    )


def _resolve_now(now: datetime | str | None, event_us: pa.ChunkedArray) -> int:
    if now is not None:
        return datetime_to_us(to_utc_datetime(now, "now"))
    latest = pc.max(event_us).as_py()
    if latest is None:
        raise InputError(
            "training_set_from_log: there are no label events, so it cannot tell how far the "
            "labels reach; pass now= (the time up to which the label source is complete)"
        )
    return int(latest)


def _check_log(table: pa.Table, keys: Sequence[str], labels: pa.Table) -> None:
    for key in keys:
        column = KEY_PREFIX + key
        if column not in table.column_names:
            have = [c[len(KEY_PREFIX):] for c in table.column_names if c.startswith(KEY_PREFIX)]
            raise SchemaError(f"feature log: no entity key {key!r}; the log has keys {have}")
        logged, given = table.schema.field(column).type, labels.schema.field(key).type
        if not (_same_kind(logged, given)):
            raise SchemaError(
                f"key {key!r} is {logged} in the feature log but {given} in the labels; "
                f"cast the labels' column to match"
            )


def _same_kind(a: pa.DataType, b: pa.DataType) -> bool:
    def kind(t: pa.DataType) -> str:
        if pa.types.is_integer(t):
            return "int"
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            return "str"
        return "null" if pa.types.is_null(t) else str(t)

    ka, kb = kind(a), kind(b)
    return ka == kb or "null" in (ka, kb)


def _labels(table: pa.Table, labels: pa.Table, keys: Sequence[str], window: int,
            how: str) -> pa.Array:
    """The label of every row of ``table``, in row order, computed by one DuckDB range join."""
    preds_cols: dict[str, Any] = {
        "__row": pa.array(range(table.num_rows), pa.int64()),
        "__t": timestamp_to_us(table.column("logged_at")),
    }
    for key in keys:
        preds_cols[key] = table.column(KEY_PREFIX + key)
    preds = pa.table(preds_cols)
    summed = _sum_column(how)
    if summed is None:
        aggregate = "count(*)"
        result_type = "BIGINT"
    else:
        is_int = pa.types.is_integer(labels.schema.field("__v").type)
        result_type = "BIGINT" if is_int else "DOUBLE"
        aggregate = "sum(l.__v)"
    value = "CASE WHEN h.n > 0 THEN 1 ELSE 0 END" if how == "any" else "coalesce(h.n, 0)"
    on = " AND ".join(f'p."{k}" = l."{k}"' for k in keys)
    sql = f"""
        WITH hits AS (
            SELECT p.__row, CAST({aggregate} AS {result_type}) AS n
            FROM preds p JOIN labels l
              ON {on} AND l.__et > p.__t AND l.__et <= p.__t + {int(window)}
            GROUP BY p.__row
        )
        SELECT CAST({value} AS {result_type}) AS label
        FROM preds p LEFT JOIN hits h USING (__row)
        ORDER BY p.__row
    """
    con = connect()
    try:
        con.register("preds", preds)
        con.register("labels", labels)
        result = query_arrow(con, sql)
    finally:
        con.close()
    return result.column("label").combine_chunks()


def _assemble(table: pa.Table, keys: Sequence[str], label_name: str,
              label: pa.Array) -> pa.Table:
    names = table.column_names
    columns: list[tuple[str, Any]] = [(k, table.column(KEY_PREFIX + k)) for k in keys]
    columns.append(("at", table.column("logged_at")))
    for prefix in (REQUEST_PREFIX, FEATURE_PREFIX):
        columns += [(n[len(prefix):], table.column(n)) for n in names if n.startswith(prefix)]
    columns.append((label_name, label))
    columns += [("request_id", table.column("request_id")),
                ("model_version", table.column("model_version"))]
    seen: dict[str, int] = {}
    for name, _ in columns:
        seen[name] = seen.get(name, 0) + 1
    clashes = sorted(n for n, count in seen.items() if count > 1)
    if clashes:
        raise SchemaError(
            f"training set: column name(s) {clashes} would appear twice (a key, request field, "
            f"feature or the label share a name); rename the label with label_name= or the "
            f"request field or feature at its source"
        )
    result = pa.table(dict(columns))
    order: list[tuple[str, str] | tuple[str, str, str]] = [("at", "ascending")]
    hidden = []
    if WORKER_COLUMN in names:  # a log with worker folders: seq is unique per worker
        result = result.append_column("__worker", table.column(WORKER_COLUMN))
        order.append(("__worker", "ascending", "at_start"))
        hidden.append("__worker")
    if "seq" in names:
        result = result.append_column("__seq", table.column("seq"))
        order.append(("__seq", "ascending"))
        hidden.append("__seq")
    result = result.sort_by(order)
    return result.drop_columns(hidden) if hidden else result
