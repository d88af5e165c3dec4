"""Durable file operations of the fact log: fsync, atomic JSON swap, locking, fault naming.

Kept apart from ``factlog`` so that the order of durability steps reads in one place; see the
fact log's module docstring for the order itself.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from parity.errors import StorageError


def fsync_file(path: Path) -> None:
    """Make the file's bytes durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make the folder's entries (new names, renames) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Replace ``path`` by ``payload`` atomically and durably: temp file, fsync, swap, dir fsync."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "w") as handle:
        json.dump(payload, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def storage_error(exc: OSError, folder: Path) -> StorageError:
    """A disk or permission fault during an append, named with its path and what to do."""
    where = exc.filename or folder
    if exc.errno == errno.ENOSPC:
        fix = "free space on that disk and ingest again"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = "the fact log is not writable here; check the folder's owner and mode"
    else:
        fix = "check the disk and the folder, then ingest again"
    error = StorageError(
        f"fact log: cannot write {where}: {exc.strerror or exc}; nothing was committed (the "
        f"manifest is unchanged). {fix[0].upper()}{fix[1:]}"
    )
    error.errno = exc.errno  # not filename: OSError would then print "[Errno ...]" instead
    return error


@contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (its ``_lock`` file) across processes."""
    with open(folder / "_lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
