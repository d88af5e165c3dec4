"""The walkthrough in docs/archive.md runs as written (paths moved to a temp folder)."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "archive.md"


def test_walkthrough_runs(tmp_path: Path) -> None:
    code = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert code is not None
    source = code.group(1).replace("/tmp/archive.db", str(tmp_path / "archive.db"))
    source = source.replace("/tmp/facts", str(tmp_path / "facts"))
    scope: dict[str, object] = {}
    exec(compile(source, str(DOC), "exec"), scope)  # our own documentation
    train = scope["train"]
    assert train.column("spend_30d").to_pylist() == [42.5, 6.25]  # type: ignore[attr-defined]
