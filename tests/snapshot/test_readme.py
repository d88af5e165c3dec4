"""The README's Snapshotter walkthrough, run exactly as written, in a scratch folder."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_walkthrough_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    section = README.read_text().split("## The Snapshotter", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README has no python block under 'The Snapshotter'"
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    exec(compile(match.group(1), "README.md", "exec"), namespace)  # our own README text
    report = namespace["report"]
    train = namespace["train"]
    total = report.coverage.total  # type: ignore[attr-defined]
    assert total.written == total.contexts > 50
    assert train.num_rows == total.written  # type: ignore[attr-defined]
    assert set(train.column("best_score").to_pylist()) == {0.9}  # type: ignore[attr-defined]
