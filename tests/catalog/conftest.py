"""The one parametrised fixture of the case catalog: every executor, with its marks applied.

A test that takes ``executor`` runs once per executor in ``EXECUTORS``. Marks that name the
executor, from the test's ``case`` parameter (``Case.marks``) or from pytest markers on the test
(``@pytest.mark.notyet([...], reason=...)``), turn into a skip or a strict xfail before the
test body runs.
"""

from __future__ import annotations

import pytest

from tests.archive.executor import ARCHIVE_EXECUTORS
from tests.catalog import marks
from tests.catalog.executors import EXECUTORS, Executor

#: Every executor the catalog runs on; the Online Archive's adapters live beside its tests.
ALL_EXECUTORS: list[Executor] = [*EXECUTORS, *ARCHIVE_EXECUTORS]


def pytest_configure(config: pytest.Config) -> None:
    for kind in marks.KINDS:
        config.addinivalue_line(
            "markers", f"{kind}(executors, reason, raises=None): see tests/catalog/marks.py"
        )


@pytest.fixture(
    params=[pytest.param(e, marks=e.pytest_marks) for e in ALL_EXECUTORS],
    ids=[e.name for e in ALL_EXECUTORS],
)
def executor(request: pytest.FixtureRequest) -> Executor:
    """Each executor of the time rules, skipped visibly when a service it needs is down."""
    chosen: Executor = request.param
    chosen.check_available()
    found = [marks.from_marker(m) for kind in marks.KINDS for m in request.node.iter_markers(kind)]
    case = getattr(request.node, "callspec", None)
    if case is not None and "case" in case.params:
        found += list(case.params["case"].marks)
    marks.apply(request, chosen.name, found)
    return chosen
