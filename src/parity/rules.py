"""The rule table: one description of each aggregate function, read by every executor.

DESIGN.md's rule 2 says what an aggregate means; this module says, once, what each function
needs from an executor: the type it returns for a field type, the value of an empty window,
whether it can be kept as running sums (add a value when it enters the window, subtract it when
it leaves), whether it needs rule 2's order, and how it treats nulls. The reference evaluator,
the DuckDB engine and the online evaluator all read this table; no other module compares an
aggregate's name as a string. An executor maps each ``Agg`` to its own code (a SQL expression,
a numpy reduction) and ``missing`` tells it which functions it has not covered yet.

It also holds the two type helpers every executor needs (``feature_arrow_type`` and
``input_types``), so that production code never imports the oracle in ``parity.reference``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

import pyarrow as pa

from parity.definitions import Aggregate, Feature, FeatureSet, Lookup
from parity.dtypes import NUMERIC, ORDERED, arrow_type
from parity.errors import DefinitionError


class Agg(str, Enum):
    """The aggregate functions. Members equal their names (``Agg.SUM == "sum"``)."""

    COUNT = "count"
    SUM = "sum"
    MEAN = "mean"
    MIN = "min"
    MAX = "max"
    LAST = "last"
    LAST_K = "last_k"
    COUNT_DISTINCT = "count_distinct"


@dataclass(frozen=True)
class AggregateRule:
    """What one aggregate function means, independent of any executor.

    - ``accepts``: the field dtypes it may read (None: any);
    - ``field_optional``: without a field it counts events (only ``count``);
    - ``empty_is_zero``: an empty window gives 0 of the output type; otherwise null;
    - ``parts``: for a subtractable function, the running sums its value is made of: ``n``
      (non-null values) and ``s`` (their sum); the value over a window is then a difference
      of prefix sums, so an executor may keep those instead of rescanning the window. Empty
      for the others, which need the window's values themselves;
    - ``ordered``: it needs rule 2's order (event_time, recorded_at, fact_id), newest first;
    - ``list_output``: it returns a list (the ``k`` newest values).

    Nulls: every function skips null values of its field, and a window whose values are all
    null counts as empty (count gives 0, sum 0, mean/min/max/last null, last_k null).
    """

    function: Agg
    accepts: frozenset[str] | None = None
    field_optional: bool = False
    empty_is_zero: bool = False
    parts: frozenset[str] = frozenset()
    ordered: bool = False
    list_output: bool = False
    fixed_dtype: str | None = None

    @property
    def subtractable(self) -> bool:
        """Whether the value is a function of running sums (see ``parts``)."""
        return bool(self.parts)

    def output_dtype(self, field_dtype: str | None) -> str:
        """The parity dtype of the result for a field of ``field_dtype`` (None: no field)."""
        if self.fixed_dtype is not None:
            return self.fixed_dtype
        if field_dtype is None:
            raise DefinitionError(f"aggregate function {self.function.value} needs a field")
        if self.function is Agg.SUM:
            # booleans and integers add up exactly as integers; floats stay floats
            return "int" if field_dtype in ("int", "bool") else field_dtype
        return field_dtype

    def arrow_type(self, dtype: str) -> pa.DataType:
        """The Arrow type of the result, given the output dtype (see ``output_dtype``)."""
        element = arrow_type(dtype)
        return pa.list_(element) if self.list_output else element

    def empty_value(self, dtype: str) -> Any:
        """The value of an empty window: 0 (0.0 for a float sum) or None."""
        if not self.empty_is_zero:
            return None
        return 0.0 if dtype == "float" else 0


_N, _NS = frozenset({"n"}), frozenset({"n", "s"})
RULES: dict[Agg, AggregateRule] = {
    rule.function: rule
    for rule in (
        AggregateRule(
            Agg.COUNT, field_optional=True, empty_is_zero=True, parts=_N, fixed_dtype="int"
        ),
        AggregateRule(Agg.SUM, accepts=NUMERIC, empty_is_zero=True, parts=_NS),
        AggregateRule(Agg.MEAN, accepts=NUMERIC, parts=_NS, fixed_dtype="float"),
        AggregateRule(Agg.MIN, accepts=ORDERED),
        AggregateRule(Agg.MAX, accepts=ORDERED),
        AggregateRule(Agg.LAST, ordered=True),
        AggregateRule(Agg.LAST_K, ordered=True, list_output=True),
        AggregateRule(Agg.COUNT_DISTINCT, empty_is_zero=True, fixed_dtype="int"),
    )
}


_BY_NAME: dict[str, AggregateRule] = {a.value: r for a, r in RULES.items()}


def rule(function: str | Agg) -> AggregateRule:
    """The rule of an aggregate function given by name; DefinitionError for an unknown one."""
    # a plain dict lookup: the online path asks once per aggregate per request
    found = _BY_NAME.get(function.value if isinstance(function, Agg) else function)
    if found is None:
        known = ", ".join(a.value for a in Agg)
        raise DefinitionError(f"unknown aggregate function {function!r}; use one of {known}")
    return found


def rule_of(feature: Aggregate) -> AggregateRule:
    """The rule of an aggregate feature."""
    return rule(feature.function)


def missing(implemented: Iterable[Agg]) -> list[Agg]:
    """The functions an executor's dispatch table does not cover (empty when complete)."""
    have = set(implemented)
    return [a for a in Agg if a not in have]


def empty_value(feature: Aggregate | Lookup) -> Any:
    """The value of a feature when no fact is visible: an aggregate's empty value, else None."""
    if isinstance(feature, Aggregate):
        return rule_of(feature).empty_value(feature.dtype)
    return None


def empty_column(feature: Aggregate | Lookup, rows: int) -> pa.Array:
    """A column of ``rows`` empty values of the feature's Arrow type."""
    return pa.array([empty_value(feature)] * rows, type=feature_arrow_type(feature))


def feature_arrow_type(feature: Feature) -> pa.DataType:
    """The Arrow type of a feature's values (a list type for last_k)."""
    if isinstance(feature, Aggregate):
        return rule_of(feature).arrow_type(feature.dtype)
    return arrow_type(feature.dtype)


def input_types(
    fs: FeatureSet, context_types: Mapping[str, pa.DataType] | None
) -> dict[str, pa.DataType]:
    """Arrow types of everything a transform of ``fs`` may read: context columns and features."""
    types = dict(context_types or {})
    for feature in fs.features:
        types[feature.name] = feature_arrow_type(feature)
    return types
