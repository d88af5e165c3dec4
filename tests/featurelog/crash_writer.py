"""Crash-test child: log records forever, printing durable_seq each time it advances.

Usage: python crash_writer.py <log folder> <repo root> [worker]. The parent SIGKILLs it.
With ``worker`` it writes the first free worker folder of the log (``open_worker_writer``),
as a ``parity serve --workers N`` process does, and prints that folder's index first.
"""

from __future__ import annotations

import sys
from typing import Any

sys.path.insert(0, sys.argv[2])

from parity.featurelog import FeatureLogWriter, open_worker_writer
from tests.featurelog.helpers import make_record


def main() -> None:
    options: dict[str, Any] = {"fsync_every_records": 200, "fsync_every_ms": 5.0,
               "segment_max_bytes": 256 * 1024}
    if sys.argv[3:] == ["worker"]:
        index, writer = open_worker_writer(sys.argv[1], on_full="block", **options)
        print(index, flush=True)
    else:
        writer = FeatureLogWriter(sys.argv[1], on_full="block", **options)
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
