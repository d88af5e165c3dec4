"""The offline engine interface: the Time Machine's executor.

An engine computes aggregates and lookups for many contexts, each as visible at its own
``at``. Transforms are applied afterwards by shared code, so every engine calls the same
function objects the same way. A new engine implements ``compute`` and passes the
conformance suite in ``tests/engines`` against the reference evaluator.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from datetime import datetime

import pyarrow as pa

from parity.contexts import normalize_contexts
from parity.definitions import Aggregate, FeatureSet, Lookup, Transform
from parity.factlog import FactLog
from parity.facts import FactData
from parity.reference import feature_arrow_type
from parity.timeutil import to_utc_datetime
from parity.transforms import apply_batch

ROW = "_row"
Progress = Callable[[str], None]


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
        columns (labels, ids), which pass through unchanged and in order. With
        ``knowledge_cutoff``, facts recorded at or after it are ignored, so the same call
        returns the same table however much is logged later. Features are appended as columns
        named after them, feature set by feature set.
        """
        table = normalize_contexts(contexts, feature_sets)
        cutoff = to_utc_datetime(knowledge_cutoff, "knowledge_cutoff") if knowledge_cutoff else None
        indexed = table.append_column(ROW, pa.array(range(table.num_rows), pa.int64()))
        report = progress or (lambda _step: None)
        computed = self.compute(indexed, feature_sets, fact_log, cutoff, report)
        out = table
        for fs in feature_sets:
            for feature in fs.features:
                if isinstance(feature, Transform):
                    report(f"transform {fs.name}.{feature.name}")
                    inputs = {name: out.column(name) for name in feature.inputs}
                    column: pa.Array | pa.ChunkedArray = apply_batch(feature, inputs, out.num_rows)
                else:
                    column = computed[feature.name].cast(feature_arrow_type(feature))
                out = out.append_column(feature.name, column)
        return out

    @abstractmethod
    def compute(
        self,
        contexts: pa.Table,
        feature_sets: Sequence[FeatureSet],
        fact_log: FactLog,
        knowledge_cutoff: datetime | None,
        progress: Progress,
    ) -> dict[str, pa.ChunkedArray | pa.Array]:
        """Aggregates and lookups (not transforms) for ``contexts``, in context order.

        ``contexts`` is normalized and carries a ``_row`` column 0..n-1. Returns a mapping
        from feature name to a column aligned with ``_row``.
        """


def raw_features(fs: FeatureSet) -> list[Aggregate | Lookup]:
    """The features of ``fs`` an engine computes (everything but transforms)."""
    return [f for f in fs.features if isinstance(f, (Aggregate, Lookup))]
