"""Every case of the shared catalog (late facts, corrections, ties, tombstones, time zones,
knowledge cutoffs...) through the archive's batch interface on SQLite and PostgreSQL, against
the reference evaluator; then hypothesis-generated worlds through the same path."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.archive.executor import ARCHIVE_EXECUTORS, ArchiveExecutor
from tests.catalog import marks
from tests.catalog.cases import CASES, FS, Case, run_case
from tests.conformance import (
    contexts,
    hypothesis_examples,
    play_facts,
    plays,
    profile_facts,
    profiles,
    ts,
)


@pytest.fixture(
    params=[
        ARCHIVE_EXECUTORS[0],
        pytest.param(ARCHIVE_EXECUTORS[1], marks=pytest.mark.services),
    ],
    ids=[e.name for e in ARCHIVE_EXECUTORS],
)
def executor(request: pytest.FixtureRequest) -> ArchiveExecutor:
    chosen: ArchiveExecutor = request.param
    chosen.check_available()
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and "case" in callspec.params:
        marks.apply(request, chosen.name, list(callspec.params["case"].marks))
    return chosen


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(case: Case, executor: ArchiveExecutor, tmp_path: Path) -> None:
    run_case(executor, case, tmp_path)


def test_property_agrees_with_reference(executor: ArchiveExecutor, tmp_path: Path) -> None:
    runs = iter(range(1_000_000))

    @settings(
        max_examples=hypothesis_examples(executor.examples),
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(data=st.data())
    def agrees(data: st.DataObject) -> None:
        members = [1, 2, 3]
        play_rows = data.draw(play_facts(members))
        ids = sorted({r["fact_id"] for r in play_rows})
        deleted = data.draw(st.lists(st.sampled_from(ids), max_size=3, unique=True)) if ids else []
        case = Case(
            "generated",
            {plays: play_rows, profiles: data.draw(profile_facts(members))},
            data.draw(contexts(members)),
            deletes=[(plays, f, data.draw(st.integers(0, 60)) + 0.25) for f in deleted],
            cutoff=data.draw(st.one_of(st.none(), st.integers(0, 60).map(lambda h: ts(h + 0.25)))),
            feature_sets=(FS,),
            seeds=(data.draw(st.integers(0, 1000)),),
        )
        workdir = tmp_path / f"run{next(runs)}"
        workdir.mkdir()
        run_case(executor, case, workdir)

    agrees()
