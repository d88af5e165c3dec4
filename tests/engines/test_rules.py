"""The rule table: one description per aggregate function, complete in every executor, and
the only place an aggregate's name is compared."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import parity as pt
from parity import reference, rules
from parity.engines.duckdb import sql
from parity.errors import DefinitionError
from parity.online import evaluate
from parity.rules import Agg, rule
from tests.conformance import plays

SRC = Path(pt.__file__).parent
FIELD_TYPES = {"minutes": "float", "rating": "int", "title": "str", "event_time": "timestamp"}


def test_every_function_has_one_rule_and_every_executor_covers_it() -> None:
    assert set(rules.RULES) == set(Agg)
    assert {a.value for a in Agg} == set(pt.definitions.AGGREGATIONS)
    ordered = [a for a, r in rules.RULES.items() if r.ordered]
    assert rules.missing(reference._REDUCE) == []
    assert rules.missing(sql._JOINED) == []
    assert rules.missing([*evaluate._REDUCE, *ordered]) == []
    assert set(sql._FROM_PARTS) == {a for a, r in rules.RULES.items() if r.subtractable}
    assert rules.missing([Agg.SUM]) == [a for a in Agg if a is not Agg.SUM]


def test_empty_windows() -> None:
    """Rule 2: count, count_distinct and sum give 0 on an empty window; the others null."""
    zero = {Agg.COUNT, Agg.COUNT_DISTINCT, Agg.SUM}
    for function, r in rules.RULES.items():
        assert r.empty_value("int") == (0 if function in zero else None)
    assert rule("sum").empty_value("float") == 0.0
    assert isinstance(rule("sum").empty_value("float"), float)


@pytest.mark.parametrize("function", list(Agg))
@pytest.mark.parametrize("field", list(FIELD_TYPES))
def test_output_type_matches_the_definitions(function: Agg, field: str) -> None:
    """The table's output dtype is the one ``Aggregate`` declares, for every field type."""
    k = 2 if function is Agg.LAST_K else None
    try:
        feature = pt.Aggregate("f", plays, function.value, field, k=k)
    except DefinitionError:
        assert rule(function).accepts is not None
        assert FIELD_TYPES[field] not in rule(function).accepts  # type: ignore[operator]
        return
    assert rule(function).output_dtype(FIELD_TYPES[field]) == feature.dtype
    expected = rules.feature_arrow_type(feature)
    assert expected == (rule(function).arrow_type(feature.dtype))
    assert str(expected).startswith("list") == (function is Agg.LAST_K)


def test_unknown_function_names_the_choices() -> None:
    with pytest.raises(DefinitionError, match="unknown aggregate function 'median'; use one of"):
        rule("median")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_production_code_never_imports_the_oracle() -> None:
    offenders = [
        str(p.relative_to(SRC))
        for p in SRC.rglob("*.py")
        if p.name != "reference.py" and "parity.reference" in _imports(p)
    ]
    assert offenders == [], "import feature_arrow_type/input_types from parity.rules instead"


def _compares_aggregate_name(node: ast.Compare) -> bool:
    names = {a.value for a in Agg}
    strings = set()
    for side in [node.left, *node.comparators]:
        for sub in ast.walk(side):
            if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                strings.add(sub.value)
    subjects = {
        sub.attr if isinstance(sub, ast.Attribute) else sub.id
        for side in [node.left, *node.comparators]
        for sub in ast.walk(side)
        if isinstance(sub, (ast.Attribute, ast.Name))
    }
    return bool(strings & names) and bool(subjects & {"function", "fn", "agg", "feature"})


def test_aggregate_names_are_compared_only_in_the_rule_table() -> None:
    found = []
    for path in SRC.rglob("*.py"):
        if path.name in ("rules.py", "definitions.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare) and _compares_aggregate_name(node):
                found.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert found == []


def test_reference_still_answers_for_its_callers() -> None:
    """Tools that run the oracle on purpose keep ``reference.feature_arrow_type``."""
    assert reference.feature_arrow_type is rules.feature_arrow_type
