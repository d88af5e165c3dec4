"""The writer thread's open segment file: create it, start it, abandon it after an error;
and the writer's parameter checks. Only the writer thread touches an ``OpenSegment``."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from parity.errors import FeatureLogConfigError
from parity.featurelog.segments import FILE_HEADER, fsync_dir, segment_name


@dataclass
class OpenSegment:
    """The open segment file; touched only by the writer thread."""

    fd: int
    path: Path
    first_seq: int
    opened_at: float
    size: int
    count: int = 0


def create_segment(root: Path, first_seq: int) -> OpenSegment:
    """Create (exclusively) the segment file whose first record will be ``first_seq``."""
    path = root / segment_name(first_seq)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
    return OpenSegment(fd, path, first_seq, time.monotonic(), len(FILE_HEADER))


def start_segment(segment: OpenSegment, write: Callable[[int, bytes], int]) -> None:
    """Write the file header and make the new name durable (fsync of the folder)."""
    write(segment.fd, FILE_HEADER)
    fsync_dir(segment.path.parent)


def abandon_segment(segment: OpenSegment) -> bool:
    """Close a segment left unsealed by a write error (the next writer repairs it). An empty
    one is deleted so the next segment can start at the same sequence number; False if that
    failed and the name stays taken."""
    with contextlib.suppress(OSError):
        os.close(segment.fd)
    if segment.count:
        return True
    try:
        segment.path.unlink()
    except OSError:
        return False
    return True


def check_config(
    queue_size: int,
    on_full: str,
    fsync_every_ms: float,
    fsync_every_records: int,
    segment_max_bytes: int,
    segment_max_age_s: float,
) -> None:
    """FeatureLogConfigError listing every parameter out of range."""
    problems = []
    if queue_size < 1:
        problems.append(f"queue_size={queue_size} must be at least 1")
    if on_full not in ("drop", "block"):
        problems.append(f"on_full={on_full!r} must be 'drop' or 'block'")
    if fsync_every_ms <= 0:
        problems.append(f"fsync_every_ms={fsync_every_ms} must be positive")
    if fsync_every_records < 1:
        problems.append(f"fsync_every_records={fsync_every_records} must be at least 1")
    if segment_max_bytes < 4096:
        problems.append(f"segment_max_bytes={segment_max_bytes} must be at least 4096")
    if segment_max_age_s <= 0:
        problems.append(f"segment_max_age_s={segment_max_age_s} must be positive")
    if problems:
        raise FeatureLogConfigError("FeatureLogWriter: " + "; ".join(problems))


