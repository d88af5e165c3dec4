"""The code version of a folder: its git commit and whether the work tree has local changes."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

_GIT_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class CodeVersion:
    """A git commit (full hex sha) and whether tracked files differ from it (``dirty``)."""

    commit: str
    dirty: bool


def code_version(directory: str | Path) -> CodeVersion | None:
    """The commit checked out in the git work tree containing ``directory``, and its dirty flag.

    ``dirty`` is True when tracked files are modified or staged; untracked files do not count
    (as in setuptools-scm), so build outputs and data files do not mark every run dirty.
    Returns None when ``directory`` is not inside a git work tree, the repository has no
    commit yet, or git is not installed: lineage then records "no code version" rather than
    failing the registration.
    """
    commit = _git(directory, "rev-parse", "--verify", "HEAD")
    if commit is None:
        return None
    status = _git(directory, "status", "--porcelain", "--untracked-files=no")
    if status is None:
        return None
    return CodeVersion(commit=commit, dirty=bool(status))


def _git(directory: str | Path, *args: str) -> str | None:
    try:
        result = subprocess.run(
            ["git", "-C", str(directory), *args],
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    return result.stdout.strip()
