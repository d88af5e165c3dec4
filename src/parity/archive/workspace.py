"""The archive of a workspace: where it lives and which of its sources it holds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from parity.archive.archive import Archive
from parity.definitions import Source


class _Definitions(Protocol):
    sources: dict[str, Source]

    def source(self, name: str) -> Source: ...


def workspace_archive(workspace: Any, url: str | None = None, names: Sequence[str] = ()) -> Archive:
    """The archive of ``workspace`` (a ``parity.Workspace``): at ``url``, else the
    workspace's ``archive:`` setting (``sqlite`` or a URL), else ``data/archive.db``. It holds
    the sources ``names``; with none, every workspace source the archive already holds."""
    from parity.archive import open_archive

    target = url or workspace.backend_url("archive", "archive.db")
    definitions: _Definitions = workspace.definitions
    if names:
        sources = [definitions.source(n) for n in names]
    else:
        with open_archive(target) as probe:
            sources = [s for s in definitions.sources.values() if probe.store.meta(s.name)]
    return open_archive(target, sources)
