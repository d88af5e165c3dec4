"""The offline engine interface: the Time Machine's executor.

An engine computes aggregates and lookups for many contexts, each as visible at its own
``at``. The shared code around it normalizes the contexts, makes the plan (``parity.plan``:
features grouped by source, the fact files that can matter for a knowledge cutoff) and applies
transforms afterwards, so every engine calls the same function objects the same way. A new
engine implements ``compute`` (its query code only) and registers an adapter in the case
catalog (``tests/catalog``), which checks it against the reference evaluator.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TypeAlias

import pyarrow as pa
import pyarrow.compute as pc

from parity.contexts import AT, normalize_contexts
from parity.definitions import FeatureSet, Transform
from parity.factlog import FactLog
from parity.facts import FactData
from parity.plan import Plan, assemble, plan_training_set
from parity.rules import feature_arrow_type
from parity.timeutil import datetime_to_us, timestamp_to_us, to_utc_datetime
from parity.transforms import apply_batch

Progress = Callable[[str], None]
Column: TypeAlias = pa.ChunkedArray | pa.Array


class Engine(ABC):
    """Computes point-in-time features for contexts from a fact log."""

    name: str = "engine"

    def training_set(
        self,
        contexts: FactData,
        feature_sets: Sequence[FeatureSet],
        fact_log: FactLog,
        knowledge_cutoff: datetime | None = None,
        progress: Progress | None = None,
    ) -> pa.Table:
        """Every feature of ``feature_sets`` for each context, as visible at its own ``at``.

        ``contexts`` holds the entity keys, ``at`` (aware UTC), request fields and any other
        columns (labels, ids), which pass through unchanged and in order, whatever their
        names. With ``knowledge_cutoff``, facts recorded at or after it are ignored, so the
        same call returns the same table however much is logged later. Features are appended
        as columns named after them, feature set by feature set.
        """
        table = normalize_contexts(contexts, feature_sets)
        cutoff = to_utc_datetime(knowledge_cutoff, "knowledge_cutoff") if knowledge_cutoff else None
        latest = pc.max(timestamp_to_us(table.column(AT))).as_py() if table.num_rows else None
        plan = plan_training_set(
            feature_sets,
            fact_log,
            latest,
            datetime_to_us(cutoff) if cutoff is not None else None,
        )
        report = progress or (lambda _step: None)
        computed = self.compute(table, plan, report)
        raw = {
            f.name: computed[f.name].cast(feature_arrow_type(f)) for f in plan.raw_features
        }
        out = table
        for fs in feature_sets:
            context: Mapping[str, Column] = {n: out.column(n) for n in out.column_names}
            apply = _transform(fs, report, out.num_rows)
            for name, column in assemble(fs, raw, context, apply).items():
                out = out.append_column(name, column)
        return out

    @abstractmethod
    def compute(self, contexts: pa.Table, plan: Plan, progress: Progress) -> dict[str, Column]:
        """Aggregates and lookups (not transforms) for ``contexts``, in context order.

        ``contexts`` is normalized (keys, ``at`` in UTC microseconds, request fields, other
        columns of any name); an engine must not rely on it having no other columns, and
        names its own working columns so that they cannot collide with a user's. Returns a
        mapping from feature name to a column aligned with the contexts' rows.
        """


def _transform(
    fs: FeatureSet, report: Progress, num_rows: int
) -> Callable[[Transform, Mapping[str, Column]], Column]:
    def apply(transform: Transform, inputs: Mapping[str, Column]) -> Column:
        report(f"transform {fs.name}.{transform.name}")
        return apply_batch(transform, inputs, num_rows)

    return apply
