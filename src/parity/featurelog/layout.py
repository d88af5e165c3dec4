"""Where the records of one feature log live: the log's own folder and its worker folders.

A log written by one process keeps everything in its folder (``segments``). A log written by
``parity serve --workers N`` has one sub-folder per worker process, ``w0/``, ``w1/``, ...,
each a complete log of its own (segments, parts, ``_writer.lock``) with its own sequence
numbers. Readers merge them (``compact.read_log``, ``segments.read_segments``): a record is
identified by ``(worker, seq)``, where ``worker`` is the folder's index, or null for records
in the log's own folder (the single-process layout, which stays readable). Merged tables are
ordered by ``(logged_at, worker, seq)``.

A worker claims the first folder whose writer lock is free (``writer.open_worker_writer``), so
a worker that restarts after a crash takes its predecessor's folder and repairs it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from parity.errors import ConfigError

WORKER_COLUMN = "worker"
_WORKER_RE = re.compile(r"^w(\d{1,6})$")


def worker_folder(root: str | Path, index: int) -> Path:
    """The folder of worker ``index`` (0, 1, ...) under the log at ``root``."""
    if index < 0:
        raise ConfigError(f"feature log worker index {index} must be 0 or more")
    return Path(root) / f"w{index}"


def scan(root: str | Path, pattern: re.Pattern[str]) -> list[tuple[Path, re.Match[str]]]:
    """``(path, match)`` of every entry of the folder ``root`` whose name matches ``pattern``
    (empty if the folder does not exist)."""
    folder = Path(root)
    if not folder.is_dir():
        return []
    found = []
    for entry in os.scandir(folder):
        match = pattern.match(entry.name)
        if match:
            found.append((Path(entry.path), match))
    return found


def worker_folders(root: str | Path) -> list[tuple[int, Path]]:
    """``(index, folder)`` of every worker folder under ``root``, by index (empty if none)."""
    return sorted((int(match.group(1)), path) for path, match in scan(root, _WORKER_RE)
                  if path.is_dir())


def log_folders(root: str | Path) -> list[tuple[int | None, Path]]:
    """Every folder holding records of the log at ``root``: the root itself (worker None),
    then the worker folders by index."""
    return [(None, Path(root)), *worker_folders(root)]
