"""The marks of the catalog: they name executors by name or pattern and become strict xfails
or skips on exactly those executors."""

from __future__ import annotations

import pytest

from tests.catalog import marks
from tests.catalog.executors import EXECUTORS, Executor


def test_marks_name_executors_by_name_or_pattern() -> None:
    mark = marks.notyet(["online-*", "duckdb-join"], reason="tiles")
    chosen = [e.name for e in EXECUTORS if mark.applies_to(e.name)]
    assert chosen == ["duckdb-join", "online-memory", "online-sqlite", "online-redis"]
    assert marks.notimpl(["spark"], reason="x").kind == "notimpl"
    assert not marks.never(["duckdb-auto"], reason="x").applies_to("duckdb-sweep")


@pytest.mark.notyet(["duckdb-*"], reason="demonstrates the mark: fails on DuckDB on purpose",
                    raises=AssertionError)
def test_a_marker_turns_into_a_strict_xfail_on_the_named_executors(executor: Executor) -> None:
    """XFAIL on every duckdb-* executor, passes elsewhere; if the mark stopped applying, the
    duckdb runs would fail, and if the xfail were not strict a passing run would hide it."""
    assert not executor.name.startswith("duckdb-")
