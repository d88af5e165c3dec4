"""The shadow window: judge models only on traffic they were not trained on.

A model scored on its own training rows looks better than it is (issue 16: an overfit
candidate passed with +0.168 AUC on rows from its training period). So before any check
scores anything, the gate keeps only shadow rows that are

1. **out of time**: their context time ``at`` is after the end of the candidate's and the
   live model's training data (plus ``shadow_accuracy.gap``, for labels that looked ahead);
2. **out of sample**: their context (entity keys and ``at``) is in neither training set.

Where a model's training data ends comes from its registry lineage (``training_set``): the
greatest ``at`` of its training rows (the file named by ``path``/``file``/``source``), else an
explicit ``train_end`` (or ``context_end``) timestamp. The contexts come from the training
rows. A candidate whose training window is unknown cannot be shown to be judged out of time:
its accuracy is ``not_enough_data`` unless ``shadow_accuracy.require_training_window`` is off.
A live model with an unknown window is noted (scoring live on its own training rows makes live
look better, so it can only hold a good candidate back, never let a bad one through).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from parity.errors import SchemaError, TimeError
from parity.timeutil import UTC, us_to_datetime

END_KEYS = ("train_end", "context_end", "training_end")
_US = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class TrainingWindow:
    """What the lineage tells about one model version's training data.

    ``end``: the last training context time (None: unknown); ``origin`` says where it came
    from; ``contexts``: the training contexts as a set of ``(keys..., at_us)`` tuples (None:
    unknown); ``keys``: the key columns those tuples hold.
    """

    role: str
    version: int
    end: datetime | None
    origin: str
    contexts: frozenset[tuple[Any, ...]] | None = None
    keys: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {"role": self.role, "version": self.version,
                "end": None if self.end is None else self.end.isoformat(),
                "origin": self.origin,
                "contexts": None if self.contexts is None else len(self.contexts)}


@dataclass
class ShadowWindow:
    """Which shadow rows were kept, which were excluded and why."""

    offered: int
    kept: int
    start: datetime | None
    end: datetime | None
    after: datetime | None
    excluded: dict[str, int] = field(default_factory=dict)
    windows: list[TrainingWindow] = field(default_factory=list)
    refusal: str | None = None
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """One sentence: the window judged and what was left out."""
        if self.offered == 0:
            return "no shadow rows were offered"
        span = (f"{_day(self.start)} to {_day(self.end)}" if self.start and self.end
                else "no rows")
        out = ", ".join(f"{n} {why}" for why, n in self.excluded.items() if n)
        after = f" (contexts after {self.after.isoformat()})" if self.after else ""
        return (f"shadow window {span}{after}: {self.kept} of {self.offered} rows kept"
                + (f"; excluded {out}" if out else ""))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict for the verdict."""
        return {"offered": self.offered, "kept": self.kept,
                "start": None if self.start is None else self.start.isoformat(),
                "end": None if self.end is None else self.end.isoformat(),
                "after": None if self.after is None else self.after.isoformat(),
                "excluded": dict(self.excluded), "refusal": self.refusal,
                "training": [w.to_dict() for w in self.windows], "notes": list(self.notes),
                "summary": self.describe()}


def training_window(role: str, version: int, lineage: Mapping[str, Any] | None,
                    rows: pa.Table | None, keys: Sequence[str]) -> TrainingWindow:
    """The training window of one version from its lineage and (if readable) its rows."""
    present = [k for k in keys if rows is not None and k in rows.column_names]
    if rows is not None and "at" in rows.column_names and rows.num_rows:
        at = _as_us(rows.column("at"))
        latest = pc.max(at).as_py()
        if latest is not None:
            contexts = frozenset(_tuples(rows, present, at)) if present else None
            return TrainingWindow(role, version, latest.astimezone(UTC),
                                  "the greatest 'at' of its training rows", contexts,
                                  tuple(present))
    for key in END_KEYS:
        value = (lineage or {}).get(key)
        end = _parse_time(value)
        if end is not None:
            return TrainingWindow(role, version, end, f"lineage {key}")
    return TrainingWindow(role, version, None, "unknown: the lineage names neither training "
                          "rows with an 'at' column nor a train_end")


def restrict(shadow: pa.Table, windows: Sequence[TrainingWindow], *, gap_s: float = 0.0,
             require_candidate: bool = True) -> tuple[pa.Table | None, ShadowWindow]:
    """Keep the shadow rows out of time and out of sample for every window.

    Returns the kept rows (None when they cannot be judged at all) and the account of it.
    """
    offered = shadow.num_rows
    known_ends = [w.end for w in windows if w.end is not None]
    after = max(known_ends) + timedelta(seconds=gap_s) if known_ends else None
    report = ShadowWindow(offered, offered, None, None, after, windows=list(windows))
    for w in windows:
        if w.end is None:
            report.notes.append(f"the training window of the {w.role} model (v{w.version}) is "
                                f"{w.origin}")
    if "at" not in shadow.column_names:
        report.refusal = ("the shadow rows have no 'at' column, so they cannot be shown to come "
                          "after the training data")
        return None, report
    at = _as_us(shadow.column("at"))
    keep = np.ones(offered, dtype=bool)
    if after is not None:
        early = ~np.asarray(pc.fill_null(pc.greater(at, pa.scalar(after, _US)), False)
                            .to_numpy(zero_copy_only=False), dtype=bool)
        report.excluded["at or before the end of training"] = int(early.sum())
        keep &= ~early
    seen = np.zeros(offered, dtype=bool)
    for w in windows:
        if w.contexts is None or not all(k in shadow.column_names for k in w.keys):
            continue
        mine = np.fromiter((t in w.contexts for t in _tuples(shadow, list(w.keys), at)),
                           dtype=bool, count=offered)
        seen |= mine & keep
    report.excluded["contexts in a training set"] = int(seen.sum())
    keep &= ~seen
    candidate = next((w for w in windows if w.role == "candidate"), None)
    if require_candidate and candidate is not None and candidate.end is None:
        report.refusal = (
            f"the candidate's training window is {candidate.origin}, so its shadow rows cannot "
            f"be shown to come after its training data; register it with "
            f"training_set={{'path': <training rows with 'at'>}} or {{'train_end': ...}}, or "
            f"set shadow_accuracy.require_training_window: false")
    kept = shadow.filter(pa.array(keep))
    report.kept = kept.num_rows
    if kept.num_rows:
        kept_at = _as_us(kept.column("at"))
        report.start, report.end = pc.min(kept_at).as_py(), pc.max(kept_at).as_py()
    return (None if report.refusal else kept), report


def _as_us(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    if not pa.types.is_timestamp(column.type):
        raise SchemaError(f"shadow/training column 'at' must be a timestamp, not {column.type}; "
                          f"cast it to timestamp[us, tz=UTC]")
    if column.type.tz is None:
        raise TimeError("shadow/training column 'at' is naive; make it timezone-aware UTC")
    return column.cast(_US)


def _tuples(table: pa.Table, keys: list[str], at: Any) -> Any:
    columns = [table.column(k).to_pylist() for k in keys]
    stamps = at.cast(pa.int64()).to_pylist()
    return zip(*columns, stamps)


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return us_to_datetime(int(value))
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed.astimezone(UTC) if parsed.tzinfo else None
    return None


def _day(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M")
