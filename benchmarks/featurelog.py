"""Feature log writer throughput, bytes per record and memory, against a raw-write baseline.

    .venv/bin/python benchmarks/featurelog.py [--records 200000] [--runs 3] [--dir PATH]

Rows:

- writer: ``FeatureLogWriter.log()`` for every record from one producer thread, then
  ``close()`` (which fsyncs and seals); encoding, framing, writing and batched fsync all run
  on the writer thread. Default cadence: fsync every 1000 records or 50 ms.
- baseline: ``os.write`` of already-encoded bytes of the same total size, one write and one
  fsync per 1000 records: the disk's share alone, measured in the same run.
- encode only: ``encode_batches`` plus framing on 1000-record chunks, no thread and no I/O.
- compact / read_log: one run each over the writer's output (informational).

Rates are medians over ``--runs``; "cpu" rates divide by process CPU time, which is steadier
than wall time on a busy machine. Peak memory: tracemalloc's peak of Python allocations during
one extra writer run, and the process's maximum resident set size at the end.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import tempfile
import time
import tracemalloc
import zlib
from datetime import datetime, timedelta, timezone
from pathlib import Path

from parity.featurelog import FeatureLogRecord, FeatureLogWriter, compact, read_log
from parity.featurelog.columns import encode_batches
from parity.featurelog.segments import BATCH, HEADER

T0 = datetime(2024, 3, 1, tzinfo=timezone.utc)
POOL = 2000  # distinct records, cycled: the writer encodes each logged record anyway


def make_record(i: int) -> FeatureLogRecord:
    """A realistic record: 20 features (floats, ints, strings, a bool, a list, a timestamp)."""
    features: dict[str, object] = {}
    for j in range(16):
        kind = j % 4
        if kind == 0:
            features[f"plays_{j}d"] = i * 0.37 + j / 7
        elif kind == 1:
            features[f"count_{j}"] = i * 13 + j
        elif kind == 2:
            features[f"genre_{j}"] = f"genre-{(i + j) % 29}"
        else:
            features[f"mean_watch_{j}"] = (i % 1000) / 997 + j
    features["recent_titles"] = [float(i % 500), float(i % 300), float(i % 200)]
    features["last_seen"] = T0 - timedelta(minutes=i % 997)
    features["is_kids"] = i % 7 == 0
    features["country"] = "NL" if i % 2 else "BR"
    return FeatureLogRecord(
        request_id=f"req-{i:012d}",
        logged_at=T0 + timedelta(milliseconds=i),
        model="ctr",
        model_version=7,
        feature_set_versions={"member_activity": "3f2a9c1b", "video_meta": "77d01e2a"},
        keys={"member": i % 100_000, "video": f"v{i % 5000}"},
        features=features,  # type: ignore[arg-type]
        request={"device": "tv", "page": "home", "row": i % 12},
        output=round(1 / (2 + i % 97), 6),
    )


def run_writer(folder: Path, records: list[FeatureLogRecord], n: int) -> dict[str, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    writer = FeatureLogWriter(folder, on_full="block")
    pool = len(records)
    log = writer.log
    for i in range(n):
        log(records[i % pool])
    writer.close()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    stats = writer.stats()
    assert stats["records_written"] == n and stats["durable_seq"] == n
    return {"wall": wall, "cpu": cpu, "bytes": stats["bytes_written"], "fsyncs": stats["fsyncs"]}


def run_baseline(
    folder: Path, bytes_per_record: float, n: int, every: int = 1000
) -> dict[str, float]:
    """Raw appends of pre-encoded bytes, one write + fsync per ``every`` records."""
    chunk = os.urandom(int(bytes_per_record * every))
    path = folder / "baseline.log"
    wall, cpu = time.perf_counter(), time.process_time()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    for _ in range(n // every):
        os.write(fd, chunk)
        os.fsync(fd)
    os.close(fd)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    path.unlink()
    return {"wall": wall, "cpu": cpu}


def run_encode_only(records: list[FeatureLogRecord], n: int, chunk: int = 1000) -> dict[str, float]:
    """Encoding and framing as the writer does it, in chunks of ``chunk`` records."""
    pack, crc = HEADER.pack, zlib.crc32
    chunks = [records[i : i + chunk] for i in range(0, len(records), chunk)]
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(n // chunk):
        payloads, _ = encode_batches(chunks[i % len(chunks)])
        for _, payload in payloads:
            pack(BATCH, len(payload), crc(payload)) + payload
    return {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None,
                        help="where to write (default: a temp dir)")
    args = parser.parse_args()
    n, runs = args.records, args.runs
    base = Path(tempfile.mkdtemp(prefix="parity-featurelog-bench-", dir=args.dir))
    records = [make_record(i) for i in range(POOL)]
    writer_runs, baseline_runs, encode_runs = [], [], []
    try:
        for run in range(runs):
            folder = base / f"run{run}"
            writer_runs.append(run_writer(folder, records, n))
            per_record = writer_runs[-1]["bytes"] / n
            baseline_runs.append(run_baseline(base, per_record, n))
            encode_runs.append(run_encode_only(records, n))
            if run < runs - 1:
                shutil.rmtree(folder)
        folder = base / f"run{runs - 1}"
        compact_wall = time.perf_counter()
        compact(folder)
        compact_wall = time.perf_counter() - compact_wall
        parquet_bytes = sum(p.stat().st_size for p in folder.glob("part-*.parquet"))
        read_wall = time.perf_counter()
        rows = read_log(folder).num_rows
        read_wall = time.perf_counter() - read_wall
        assert rows == n

        tracemalloc.start()
        run_writer(base / "traced", records, min(n, 50_000))
        _, traced_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)

    def rate(results: list[dict[str, float]], key: str) -> float:
        return statistics.median(n / r[key] for r in results)

    writer_wall, writer_cpu = rate(writer_runs, "wall"), rate(writer_runs, "cpu")
    baseline_wall = rate(baseline_runs, "wall")
    bytes_per_record = statistics.median(r["bytes"] / n for r in writer_runs)
    fsyncs = statistics.median(r["fsyncs"] for r in writer_runs)
    maxrss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(f"feature log benchmark: {n:,} records x {runs} runs, ~20 features each, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    print(f"{'measure':<34}{'value':>16}")
    rows_out = [
        ("writer records/s (wall)", f"{writer_wall:,.0f}"),
        ("writer records/s (cpu)", f"{writer_cpu:,.0f}"),
        ("baseline raw write records/s", f"{baseline_wall:,.0f}"),
        ("writer / baseline (wall)", f"{writer_wall / baseline_wall:.3f}"),
        ("encode only records/s (cpu)", f"{rate(encode_runs, 'cpu'):,.0f}"),
        ("bytes per record (segment)", f"{bytes_per_record:,.1f}"),
        ("bytes per record (parquet)*", f"{parquet_bytes / n:,.1f}"),
        ("fsyncs per run", f"{fsyncs:,.0f}"),
        ("compact records/s (1 run)", f"{n / compact_wall:,.0f}"),
        ("read_log records/s (1 run)", f"{n / read_wall:,.0f}"),
        ("peak traced Python MiB (writer)", f"{traced_peak / 2**20:,.1f}"),
        ("max RSS MiB (process)", f"{maxrss_mib:,.0f}"),
    ]
    for name, value in rows_out:
        print(f"{name:<34}{value:>16}")
    print(f"* the run cycles {POOL:,} distinct records, which Parquet compresses very well; "
          f"expect more on real traffic")


if __name__ == "__main__":
    main()
