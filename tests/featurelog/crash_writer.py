"""Crash-test child: log records forever, printing durable_seq each time it advances.

Usage: python crash_writer.py <log folder> <repo root>. The parent SIGKILLs it.
"""

from __future__ import annotations

import sys

sys.path.insert(0, sys.argv[2])

from parity.featurelog import FeatureLogWriter
from tests.featurelog.helpers import make_record


def main() -> None:
    writer = FeatureLogWriter(sys.argv[1], on_full="block", fsync_every_records=200,
                              fsync_every_ms=5, segment_max_bytes=256 * 1024)
    i = writer.recovery.next_seq  # record i gets seq i, so the parent can check every field
    reported = 0
    while True:
        writer.log(make_record(i))
        i += 1
        durable = writer.durable_seq
        if durable != reported:
            reported = durable
            print(durable, flush=True)


if __name__ == "__main__":
    main()
