"""Where verdicts are kept: JSON and an HTML report per model version, beside the artifacts.

The registry has no place for documents attached to a version yet, so verdicts live in a
folder next to the artifacts (``<artifacts_root>/../sentinel`` by default)::

    <root>/<model>/<version>/verdict.json        the latest verdict of that version
    <root>/<model>/<version>/report.html         its self-contained HTML report
    <root>/<model>/<version>/history/<time>.json every verdict ever written, oldest first

Writes go to a temporary file and are renamed into place, so a reader never sees half a file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from parity.sentinel.verdict import Verdict


class VerdictStore:
    """Verdicts and reports by model and version under ``root``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def folder(self, model: str, version: int) -> Path:
        """The folder of one model version."""
        return self.root / model / str(version)

    def save(self, verdict: Verdict, html: str | None = None) -> Verdict:
        """Write ``verdict`` (and its report), record the paths in ``verdict.paths``."""
        folder = self.folder(verdict.model, verdict.version)
        folder.mkdir(parents=True, exist_ok=True)
        json_path = folder / "verdict.json"
        verdict.paths["verdict"] = str(json_path)
        if html is not None:
            report_path = folder / "report.html"
            _write_atomic(report_path, html)
            verdict.paths["report"] = str(report_path)
        text = verdict.to_json()
        stamp = verdict.checked_at.strftime("%Y%m%dT%H%M%S.%fZ")
        history = folder / "history"
        history.mkdir(exist_ok=True)
        _write_atomic(history / f"{stamp}.json", text)
        _write_atomic(json_path, text)
        return verdict

    def load(self, model: str, version: int) -> Verdict | None:
        """The latest stored verdict of a version, or None if it was never checked."""
        path = self.folder(model, version) / "verdict.json"
        if not path.exists():
            return None
        return Verdict.from_json(path.read_text())

    def history(self, model: str, version: int) -> list[Verdict]:
        """Every stored verdict of a version, oldest first."""
        folder = self.folder(model, version) / "history"
        if not folder.exists():
            return []
        return [Verdict.from_json(p.read_text()) for p in sorted(folder.glob("*.json"))]


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
