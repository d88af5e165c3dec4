"""The feature log (Lumberjack): record what the online path computed and served, train on it.

    writer = FeatureLogWriter("logs/ctr")          # background thread, batched fsync
    writer.log(FeatureLogRecord(...))               # per prediction; never waits for the disk
    writer.close()
    compact("logs/ctr")                             # sealed segments -> Parquet parts
    table = read_log("logs/ctr")                    # parts + live segments, each record once
    train = training_set_from_log(table, labels, keys=["member"], label_window="7d")

Modules: ``record`` (the record), ``columns`` (records as Arrow: the flat table layout),
``segments`` (framing, segment files, reading, crash repair), ``writer``, ``ledger``
(which accepted records are durable), ``compact``
(Parquet parts, ``read_log``), ``layout`` (one folder per worker process, merged on
read), ``sampling`` (consistent per-entity sampling), ``logjoin``
(log and wait). See docs/feature-log.md.
"""

from parity.errors import FeatureLogConfigError, WriterClosedError
from parity.featurelog.columns import LogSchema, records_table, table_records
from parity.featurelog.compact import CompactReport, compact, read_log
from parity.featurelog.ledger import Receipt
from parity.featurelog.logjoin import training_set_from_log
from parity.featurelog.record import FeatureLogRecord
from parity.featurelog.sampling import KeySampler, is_sampled
from parity.featurelog.segments import (
    CorruptSegmentError,
    LogLockedError,
    ReadReport,
    read_segments,
)
from parity.featurelog.writer import FeatureLogWriter, open_worker_writer

__all__ = [
    "CompactReport",
    "CorruptSegmentError",
    "FeatureLogConfigError",
    "FeatureLogRecord",
    "FeatureLogWriter",
    "KeySampler",
    "LogLockedError",
    "LogSchema",
    "ReadReport",
    "Receipt",
    "WriterClosedError",
    "compact",
    "is_sampled",
    "open_worker_writer",
    "read_log",
    "read_segments",
    "records_table",
    "table_records",
    "training_set_from_log",
]
