"""Time Machine benchmark: DuckDBEngine.training_set against hand-written DuckDB queries.

    .venv/bin/python benchmarks/timemachine.py --scale small       # smoke run, a few minutes
    .venv/bin/python benchmarks/timemachine.py                     # full scale
    .venv/bin/python benchmarks/timemachine.py --only aggregates --repeat 1

Lookups: 5 float Lookups with ttl=30d over a state source, versus one
``ctx ASOF LEFT JOIN state`` query on the same Parquet files (goal: parity <= 1.3x its time).
Aggregates: count/sum/mean over 1, 7 and 30 days (9 features) over an event source, versus two
hand-written baselines: a naive range join (key, ``event_time`` in [at - 30d, at),
``recorded_at < at``) grouped by context with one FILTER per window, and running sums (+1/-1
deltas per window at visibility and window end, a prefix sum per key, one ASOF join; plain
DOUBLE sums, so not exact). Goal: parity <= 1.2x the faster baseline on every shape; < 4 GB
peak RSS at full size. Two key shapes: uniform keys, and Zipf-skewed keys (``ZIPF_ENTITIES``
entities, exponent ``ZIPF_EXPONENT``; contexts drawn from the same distribution, so heavy keys
meet many contexts: the shape that makes a join plan blow up).

Data is synthetic (numpy, fixed seed, one year, uniform times), ingested through
``parity.FactLog.ingest`` with a 5 minute source lag, so that ``recorded_at = event_time + 5m``
and visibility differs from ``event_time`` alone. It is kept under ``bench-data/timemachine``
and reused when the parameters match. Every measured phase runs in a fresh subprocess.
Before timing, a sample of contexts (random ones plus ones placed exactly on visibility, window
and ttl boundaries) is checked: parity must equal the baseline there.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from _common import (
    REPO,
    Phase,
    PhaseFailed,
    Stopwatch,
    console,
    exact_command,
    fmt_count,
    fmt_seconds,
    machine,
    measure,
    render_table,
    report,
    run_child,
)

SCRIPT = Path(__file__).resolve()
DATA = REPO / "bench-data" / "timemachine"
GENERATOR_VERSION = 1
YEAR_START = datetime(2024, 1, 1, tzinfo=timezone.utc)
YEAR_US = 366 * 86_400_000_000
DAY_US = 86_400_000_000
LAG = "5m"
LAG_US = 5 * 60_000_000
TTL = "30d"
WINDOWS = {"1d": DAY_US, "7d": 7 * DAY_US, "30d": 30 * DAY_US}
FIELDS = [f"f{i}" for i in range(5)]
SAMPLE_CONTEXTS = 2_000
GIB = 1024.0
ZIPF_ENTITIES = 1_000
ZIPF_EXPONENT = 1.1


@dataclass(frozen=True)
class Scale:
    entities: int
    state_versions: int
    lookup_contexts: int
    event_sizes: tuple[int, ...]
    aggregate_contexts: int
    repeat: int
    phase_budget: float  # seconds of wall time per phase after which repeats stop
    naive_limit: float  # seconds: a naive run predicted slower than this is estimated instead
    zipf_sizes: tuple[int, ...] = ()  # event counts of the Zipf-skewed shape


SCALES = {
    "small": Scale(10_000, 200_000, 100_000, (30_000, 100_000), 100_000, 3, 60, 120,
                   (100_000,)),
    "full": Scale(100_000, 2_000_000, 1_000_000, (1_000_000, 3_000_000, 10_000_000),
                  1_000_000, 3, 150, 600, (1_000_000,)),
}


# ------------------------------------------------------------------------------ definitions


def definitions() -> dict[str, Any]:
    """The sources and feature sets (built in every process from the same code)."""
    import parity as pt

    member = pt.Entity("member", {"member_id": int})
    profiles = pt.StateSource("bench_profiles", member, {f: float for f in FIELDS}, lag=LAG)
    events = pt.EventSource("bench_events", member, {"amount": float}, lag=LAG)
    lookups = pt.FeatureSet(
        "bench_lookups", member, [pt.Lookup(f"p_{f}", profiles, f, ttl=TTL) for f in FIELDS]
    )
    aggs: list[Any] = []
    for window in WINDOWS:
        aggs += [
            pt.Aggregate(f"n_{window}", events, "count", window=window),
            pt.Aggregate(f"sum_{window}", events, "sum", "amount", window),
            pt.Aggregate(f"mean_{window}", events, "mean", "amount", window),
        ]
    aggregates = pt.FeatureSet("bench_aggregates", member, aggs)
    return {"profiles": profiles, "events": events, "lookups": lookups, "aggregates": aggregates}


# ------------------------------------------------------------------------------------ data


def dataset_dir(kind: str, facts: int, entities: int, contexts: int) -> Path:
    params = {"kind": kind, "facts": facts, "entities": entities, "contexts": contexts,
              "lag": LAG, "start": YEAR_START.isoformat(), "v": GENERATOR_VERSION}
    digest = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:8]
    return DATA / f"{kind}-{fmt_count(facts)}-{fmt_count(contexts)}ctx-{digest}"


def generate(kind: str, folder: Path, facts: int, entities: int, contexts: int) -> dict[str, Any]:
    """Write the fact log and contexts of one dataset (child process)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    import parity as pt

    defs = definitions()
    seed = {"state": 1, "events": 2, "zipf": 3}[kind] * 1_000_003 + facts
    rng = np.random.default_rng(seed)
    start_us = int(YEAR_START.timestamp() * 1_000_000)
    weights = 1.0 / np.arange(1, entities + 1) ** ZIPF_EXPONENT
    zipf = weights / weights.sum()

    def draw_keys(gen: Any, count: int) -> Any:
        if kind == "zipf":
            return gen.choice(entities, count, p=zipf).astype(np.int64)
        return gen.integers(0, entities, count, dtype=np.int64)

    keys = draw_keys(rng, facts)
    times = start_us + rng.integers(0, YEAR_US, facts, dtype=np.int64)
    # Unique (key, event_time), so "the latest version" is never a tie the baseline can't break.
    order = np.lexsort((times, keys))
    keys, times = keys[order], times[order]
    keep = np.ones(len(keys), bool)
    keep[1:] = (keys[1:] != keys[:-1]) | (times[1:] != times[:-1])
    keys, times = keys[keep], times[keep]
    shuffle = rng.permutation(len(keys))
    keys, times = keys[shuffle], times[shuffle]
    n = len(keys)

    def floats(values: Any) -> pa.Array:
        return pa.array(values, pa.float64(), mask=rng.random(n) < 0.01)  # 1% nulls

    columns: dict[str, Any] = {"member_id": pa.array(keys)}
    if kind == "state":
        for f in FIELDS:
            columns[f] = floats(rng.normal(0, 100, n))
        source = defs["profiles"]
    else:
        columns["amount"] = floats(np.round(rng.lognormal(3, 1, n), 2) + 0.01)
        source = defs["events"]
    columns["event_time"] = pa.array(times).cast(pa.timestamp("us", tz="UTC"))
    columns["fact_id"] = pa.array(np.arange(n, dtype=np.int64)).cast(pa.string())
    table = pa.table(columns)
    del columns

    if folder.exists():
        shutil.rmtree(folder)
    (folder / "log").mkdir(parents=True)
    with Stopwatch() as ingest:
        result = pt.FactLog(folder / "log").ingest(source, table)
    ctx_rng = np.random.default_rng(seed + 7)
    ctx = pa.table({
        "member_id": pa.array(draw_keys(ctx_rng, contexts)),
        "at": pa.array(start_us + ctx_rng.integers(0, YEAR_US, contexts, dtype=np.int64))
        .cast(pa.timestamp("us", tz="UTC")),
    })
    pq.write_table(ctx, folder / "contexts.parquet")
    meta = {"kind": kind, "facts": result.rows_written, "contexts": contexts,
            "entities": entities, "files": result.files, "ingest_seconds": ingest.seconds}
    (folder / "_ready.json").write_text(json.dumps(meta, indent=1))
    return meta


def ensure_dataset(kind: str, facts: int, entities: int, contexts: int) -> tuple[Path, dict[str, Any]]:
    folder = dataset_dir(kind, facts, entities, contexts)
    ready = folder / "_ready.json"
    if ready.exists():
        return folder, json.loads(ready.read_text())
    console.print(f"[dim]generating {kind} data: {fmt_count(facts)} facts, "
                  f"{fmt_count(contexts)} contexts -> {folder.relative_to(REPO)}[/dim]")
    started = time.perf_counter()
    meta = run_child(SCRIPT, ["_generate", kind, str(folder), str(facts), str(entities),
                              str(contexts)])
    console.print(f"[dim]  done in {time.perf_counter() - started:.0f}s "
                  f"(ingest {meta['ingest_seconds']:.0f}s, {meta['files']} files)[/dim]")
    return folder, json.loads(ready.read_text())


# --------------------------------------------------------------------- the measured queries


def load(folder: Path) -> tuple[Any, Any]:
    import pyarrow.parquet as pq

    import parity as pt

    return pq.read_table(folder / "contexts.parquet"), pt.FactLog(folder / "log")


def parquet_list(paths: list[str]) -> str:
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


def lookup_baseline_sql(paths: list[str]) -> str:
    # ASOF on recorded_at: with a constant lag, recorded_at orders versions exactly as
    # event_time does, and "recorded_at < at" implies "event_time < at" (rules 1 and 3).
    picks = ", ".join(
        f"CASE WHEN s.event_time < c.at - INTERVAL '{TTL[:-1]} days' THEN NULL ELSE s.{f} END "
        f"AS p_{f}" for f in FIELDS
    )
    return f"""
        SELECT c._row, {picks}
        FROM ctx c ASOF LEFT JOIN read_parquet({parquet_list(paths)}) s
          ON c.member_id = s.member_id AND c.at > s.recorded_at
        ORDER BY c._row
    """


def naive_aggregate_sql(paths: list[str]) -> str:
    widest = max(WINDOWS, key=lambda w: WINDOWS[w])
    selects = []
    for window in WINDOWS:
        inside = f"FILTER (WHERE e.event_time >= c.at - INTERVAL '{window[:-1]} days')"
        selects += [
            f"count(e.fact_id) {inside} AS n_{window}",
            f"coalesce(sum(e.amount) {inside}, 0.0) AS sum_{window}",
            f"avg(e.amount) {inside} AS mean_{window}",
        ]
    return f"""
        SELECT c._row, {', '.join(selects)}
        FROM ctx c LEFT JOIN read_parquet({parquet_list(paths)}) e
          ON e.member_id = c.member_id
         AND e.event_time < c.at AND e.recorded_at < c.at
         AND e.event_time >= c.at - INTERVAL '{widest[:-1]} days'
        GROUP BY c._row
        ORDER BY c._row
    """


def running_sums_sql(paths: list[str]) -> str:
    """Hand-written running sums: an event counts from its visibility (``recorded_at``, as
    ``recorded_at > event_time`` here) until its window ends (``event_time + W``)."""
    names = list(WINDOWS)
    parts = [f"n_{w}, s_{w}, c_{w}" for w in names]
    enter = ", ".join(f"1 AS n_{w}, amount AS s_{w}, (amount IS NOT NULL)::INT AS c_{w}"
                      for w in names)
    branches = [f"SELECT member_id, ra AS t, {enter} FROM e"]
    for w, span in WINDOWS.items():
        cols = ", ".join(
            f"-1 AS n_{x}, -amount AS s_{x}, -(amount IS NOT NULL)::INT AS c_{x}" if x == w
            else f"0 AS n_{x}, 0.0 AS s_{x}, 0 AS c_{x}" for x in names)
        branches.append(f"SELECT member_id, et + {span} AS t, {cols} FROM e")
    sums = ", ".join(f"sum({c.strip()}) AS {c.strip()}" for p in parts for c in p.split(","))
    running = ", ".join(
        f"sum({c.strip()}) OVER (PARTITION BY member_id ORDER BY t ROWS UNBOUNDED PRECEDING) "
        f"AS {c.strip()}" for p in parts for c in p.split(","))
    picks = []
    for w in names:
        picks += [f"coalesce(p.n_{w}, 0) AS n_{w}", f"coalesce(p.s_{w}, 0.0) AS sum_{w}",
                  f"CASE WHEN coalesce(p.c_{w}, 0) = 0 THEN NULL ELSE p.s_{w} / p.c_{w} END "
                  f"AS mean_{w}"]
    union = "\n UNION ALL ".join(branches)
    return f"""
        WITH e AS (SELECT member_id, epoch_us(event_time) AS et, epoch_us(recorded_at) AS ra,
                          amount FROM read_parquet({parquet_list(paths)})),
        d AS ({union}),
        g AS (SELECT member_id, t, {sums} FROM d GROUP BY member_id, t),
        p AS (SELECT member_id, t, {running} FROM g)
        SELECT c._row, {', '.join(picks)}
        FROM ctx c ASOF LEFT JOIN p ON c.member_id = p.member_id AND epoch_us(c.at) > p.t
        ORDER BY c._row
    """


def run_parity(kind: str, contexts: Any, log: Any) -> Any:
    from parity.engines.duckdb import DuckDBEngine

    fs = definitions()["lookups" if kind == "lookups" else "aggregates"]
    return DuckDBEngine().training_set(contexts, [fs], log)


def run_baseline(kind: str, contexts: Any, log: Any, who: str = "baseline") -> Any:
    import pyarrow as pa

    from parity._duck import connect, query_arrow

    defs = definitions()
    source = defs["profiles"] if kind == "lookups" else defs["events"]
    spill = tempfile.mkdtemp(prefix="bench-duckdb-")
    con = connect("4GB", None, spill)  # the same settings DuckDBEngine uses
    try:
        ctx = contexts.append_column("_row", pa.array(range(contexts.num_rows), pa.int64()))
        con.register("ctx", ctx)
        paths = log.paths(source)
        if kind == "lookups":
            sql = lookup_baseline_sql(paths)
        elif who == "sums":
            sql = running_sums_sql(paths)
        else:
            sql = naive_aggregate_sql(paths)
        return query_arrow(con, sql)
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)


def child_measure(kind: str, who: str, folder: Path) -> None:
    contexts, log = load(folder)
    with Stopwatch() as sw:
        if who == "parity":
            out = run_parity(kind, contexts, log)
        else:
            out = run_baseline(kind, contexts, log, who)
    report(seconds=sw.seconds, rows=out.num_rows)


# ------------------------------------------------------------------------------- sanity


def sample_contexts(kind: str, contexts: Any, log: Any) -> Any:
    """Random contexts plus contexts exactly on the edges of visibility, windows and ttl."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    defs = definitions()
    rng = np.random.default_rng(99)
    half = SAMPLE_CONTEXTS // 2
    picked = contexts.take(rng.choice(contexts.num_rows, half, replace=False))
    facts = log.read(defs["profiles"] if kind == "lookups" else defs["events"])
    facts = facts.take(rng.choice(facts.num_rows, half, replace=False))
    et = facts.column("event_time").cast(pa.int64()).to_numpy()
    ra = facts.column("recorded_at").cast(pa.int64()).to_numpy()
    span = WINDOWS["30d"] if kind == "lookups" else None
    edges = [ra, ra + 1, et + LAG_US - 1]
    if kind == "lookups":
        edges += [et + span, et + span + 1]  # ttl: exactly 30d old is kept, 1us more is not
    else:
        for w in WINDOWS.values():
            edges += [et + w, et + w + 1]  # window [t - W, t): t - W is in, 1us more is out
    which = rng.integers(0, len(edges), half)
    at = np.choose(which, edges)
    extra = pa.table({"member_id": facts.column("member_id"),
                      "at": pa.array(at).cast(pa.timestamp("us", tz="UTC"))})
    out = pa.concat_tables([picked.select(["member_id", "at"]), extra.cast(picked.schema)])
    assert pc.min(out.column("at")).as_py() is not None
    return out


def compare(kind: str, expected: Any, actual: Any) -> dict[str, Any]:
    """Cell-by-cell comparison; counts exactly, floats to 1e-9 relative."""
    names = [f"p_{f}" for f in FIELDS] if kind == "lookups" else [
        f"{fn}_{w}" for w in WINDOWS for fn in ("n", "sum", "mean")]
    mismatches: dict[str, int] = {}
    examples: list[str] = []
    nonnull = 0
    for name in names:
        want = expected.column(name).to_pylist()
        got = actual.column(name).to_pylist()
        bad = 0
        for row, (a, b) in enumerate(zip(want, got)):
            if a is not None:
                nonnull += 1
            same = (a is None and b is None) or (
                a is not None and b is not None and (
                    a == b if isinstance(a, int) and isinstance(b, int)
                    else math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)))
            if not same:
                bad += 1
                if len(examples) < 5:
                    ctx = actual.slice(row, 1).select(["member_id", "at"]).to_pylist()[0]
                    examples.append(f"{name} row {row} {ctx}: baseline={a!r} parity={b!r}")
        if bad:
            mismatches[name] = bad
    return {"rows": actual.num_rows, "cells": actual.num_rows * len(names),
            "non_null_cells": nonnull, "mismatches": mismatches, "examples": examples}


def child_check(kind: str, folder: Path) -> None:
    contexts, log = load(folder)
    sample = sample_contexts(kind, contexts, log)
    expected = run_baseline(kind, sample, log)
    actual = run_parity(kind, sample, log)
    report(seconds=0.0, **compare(kind, expected, actual))


# ------------------------------------------------------------------------------- driver


def engine_fingerprint() -> str:
    """A hash of the DuckDB engine's sources, so that figures can be tied to the code measured."""
    digest = hashlib.sha1()
    for path in sorted((REPO / "src" / "parity" / "engines").rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def goal_mark(ok: bool | None) -> str:
    return "-" if ok is None else ("[green]yes[/green]" if ok else "[bold red]NO[/bold red]")


def run_benchmark(args: argparse.Namespace) -> None:
    scale = SCALES[args.scale]
    repeat = args.repeat or scale.repeat
    wall = time.perf_counter()
    console.print(f"[bold]parity Time Machine benchmark[/bold] scale={args.scale} "
                  f"repeat={repeat} machine={machine()}")
    record: dict[str, Any] = {"scale": args.scale, "params": asdict(scale), "repeat": repeat,
                              "command": exact_command(), "machine": machine(),
                              "started": datetime.now(timezone.utc).isoformat(),
                              "engine_sources_sha1": engine_fingerprint(),
                              "phases": [], "sanity": [], "goals": []}
    rows: list[list[str]] = []
    failures: list[str] = []

    def progress(result: dict[str, Any]) -> None:
        console.print(f"[dim]    {result['seconds']:.2f}s, peak {result['peak_rss_mb']:.0f} MB[/dim]")

    def sanity(kind: str, folder: Path, label: str) -> None:
        console.print(f"[dim]sanity {label}: {SAMPLE_CONTEXTS} contexts, parity vs baseline[/dim]")
        result = run_child(SCRIPT, ["_check", kind, str(folder)])
        result["dataset"] = label
        record["sanity"].append(result)
        if result["mismatches"]:
            failures.append(label)
            console.print(f"[bold red]DISAGREEMENT ({label}): parity differs from the baseline "
                          f"in {sum(result['mismatches'].values())} of {result['cells']} cells: "
                          f"{result['mismatches']}[/bold red]")
            for example in result["examples"]:
                console.print(f"[red]  {example}[/red]")
        else:
            console.print(f"[green]  agree on all {result['cells']} cells "
                          f"({result['non_null_cells']} non-null)[/green]")

    def add_phase(phase: Phase, facts: int, contexts: int, ratio: float | None, goal: str,
                  ok: bool | None, kind: str) -> None:
        rows.append([
            phase.name, fmt_count(facts), fmt_count(contexts), str(len(phase.runs)),
            fmt_seconds(phase.seconds, phase.estimated),
            "-" if ratio is None else f"{ratio:.2f}",
            "-" if phase.peak_rss_mb is None else f"{phase.peak_rss_mb:,.0f}",
            goal, goal_mark(ok),
        ])
        record["phases"].append({
            "phase": phase.name, "kind": kind, "facts": facts, "contexts": contexts,
            "runs_seconds": phase.all_seconds, "median_seconds": phase.seconds,
            "estimated": phase.estimated, "ratio_vs_baseline": ratio,
            "peak_rss_mb": phase.peak_rss_mb, "goal": goal, "goal_met": ok, "note": phase.note,
        })

    def run(name: str, kind: str, who: str, folder: Path, timeout: float | None = None) -> Phase:
        console.print(f"[dim]{name}[/dim]")
        return measure(name, SCRIPT, ["_measure", kind, who, str(folder)], repeat,
                       scale.phase_budget, timeout, progress)

    shape_ratios: list[tuple[str, float | None, float | None]] = []

    def naive_phase(at: str, folder: Path, facts: int, points: list[tuple[int, float]]) -> Phase:
        """The naive join, or its linear extrapolation when it would take too long."""
        name = f"aggregates: naive join {at}"
        predicted = _extrapolate(points, facts)
        if predicted is not None and predicted > scale.naive_limit:
            naive = Phase(name, estimated_seconds=predicted,
                          note=f"not run: linear extrapolation from "
                               f"{', '.join(fmt_count(n) for n, _ in points)} events "
                               f"predicts {predicted:.0f}s > {scale.naive_limit:.0f}s")
            console.print(f"[yellow]{naive.note}[/yellow]")
            return naive
        try:
            naive = run(name, "aggregates", "baseline", folder, timeout=2 * scale.naive_limit)
            points.append((facts, naive.seconds or 0.0))
            return naive
        except PhaseFailed as exc:
            if not exc.timed_out:
                raise
            naive = Phase(name, estimated_seconds=_extrapolate(points, facts),
                          note=f"timed out after {2 * scale.naive_limit:.0f}s; estimate "
                               f"is a linear extrapolation")
            console.print(f"[yellow]{naive.note}[/yellow]")
            return naive

    if args.only in (None, "lookups"):
        folder, meta = ensure_dataset("state", scale.state_versions, scale.entities,
                                      scale.lookup_contexts)
        sanity("lookups", folder, f"lookups {fmt_count(meta['facts'])} versions")
        base = run("lookups: ASOF baseline", "lookups", "baseline", folder)
        mine = run("lookups: parity", "lookups", "parity", folder)
        ratio = mine.seconds / base.seconds if mine.seconds and base.seconds else None
        add_phase(base, meta["facts"], meta["contexts"], 1.0, "", None, "lookups-baseline")
        ok = ratio is not None and ratio <= 1.3
        add_phase(mine, meta["facts"], meta["contexts"], ratio, "ratio <= 1.3", ok, "lookups-parity")
        record["goals"].append({"goal": "lookups: parity <= 1.3x ASOF baseline", "value": ratio, "met": ok})

    if args.only in (None, "aggregates"):
        parity_points: list[tuple[int, float]] = []
        shapes = [("uniform", "events", size, scale.entities) for size in scale.event_sizes]
        shapes += [("zipf", "zipf", size, ZIPF_ENTITIES) for size in scale.zipf_sizes]
        naive_points: dict[str, list[tuple[int, float]]] = {"uniform": [], "zipf": []}
        for shape, data_kind, size, entities in shapes:
            folder, meta = ensure_dataset(data_kind, size, entities, scale.aggregate_contexts)
            at = f"{shape} @{fmt_count(size)}"
            if not args.skip_sanity:
                sanity("aggregates", folder, f"aggregates {at} events")
            mine = run(f"aggregates: parity {at}", "aggregates", "parity", folder)
            try:
                sums = run(f"aggregates: running sums {at}", "aggregates", "sums", folder)
            except PhaseFailed as exc:  # the hand-written baseline may not fit; say so, go on
                first = str(exc).strip().splitlines()[-1][:120]
                sums = Phase(f"aggregates: running sums {at}", note=f"failed: {first}")
                console.print(f"[yellow]{sums.note}[/yellow]")
            naive = naive_phase(at, folder, meta["facts"], naive_points[shape])
            if shape == "uniform":
                parity_points.append((meta["facts"], mine.seconds or 0.0))
            timed = [p.seconds for p in (naive, sums) if p.seconds]
            best = min(timed) if timed else None
            ratio = mine.seconds / best if mine.seconds and best else None
            for phase, kind in ((naive, "aggregates-naive"), (sums, "aggregates-sums")):
                own = phase.seconds / best if phase.seconds and best else None
                add_phase(phase, meta["facts"], meta["contexts"], own, "", None, kind)
                record["phases"][-1]["shape"] = shape
                if phase.estimated:
                    rows[-1][5] += " (est.)"
            goal = "ratio <= 1.2 (best baseline)"
            ok = ratio is not None and ratio <= 1.2
            mem_ok = None
            if args.scale == "full" and size == max(scale.event_sizes):
                mem_ok = mine.peak_rss_mb is not None and mine.peak_rss_mb < 4 * GIB
                goal += "; RSS < 4 GB"
                record["goals"].append({"goal": f"aggregates {at}: peak RSS < 4 GB",
                                        "value": mine.peak_rss_mb, "met": mem_ok})
            add_phase(mine, meta["facts"], meta["contexts"], ratio, goal,
                      ok and (mem_ok is not False), "aggregates-parity")
            record["phases"][-1]["shape"] = shape
            shape_ratios.append((at, ratio, mine.peak_rss_mb))
            record["goals"].append({"goal": f"aggregates {at}: parity <= 1.2x the best baseline",
                                    "value": ratio, "met": ok,
                                    "baseline_estimated": best is not None and naive.estimated
                                    and best == naive.seconds})
        record["aggregate_scaling"] = _scaling(parity_points)

    render_table(f"Time Machine ({args.scale} scale; median of up to {repeat} runs, each in a "
                 f"fresh process; ratio = seconds / the best baseline's seconds)",
                 ["phase", "facts", "contexts", "runs", "seconds", "ratio", "peak RSS MB",
                  "goal", "met"], rows)
    notes = [p for p in record["phases"] if p["note"]]
    for p in notes:
        console.print(f"[yellow]note[/yellow] {p['phase']}: {p['note']}")
    if shape_ratios:
        console.print("aggregates, parity / best baseline by shape: " + "; ".join(
            f"{at}: {'-' if r is None else f'{r:.2f}x'}"
            f" (peak {'-' if mb is None else f'{mb:,.0f}'} MB)" for at, r, mb in shape_ratios))
    scaling = record.get("aggregate_scaling")
    if scaling:
        console.print(f"aggregates scaling: {scaling['text']}")
    if failures:
        console.print(f"[bold red]SANITY FAILED on {', '.join(failures)}: parity disagrees with "
                      f"the baseline (see above) - a bug to report[/bold red]")
    else:
        console.print(f"[green]sanity: parity equals the baseline on every sampled cell "
                      f"({len(record['sanity'])} datasets)[/green]")
    record["sanity_ok"] = not failures
    record["total_seconds"] = time.perf_counter() - wall
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1))
    console.print(f"command: {exact_command()}")
    console.print(f"[dim]figures: {out.relative_to(REPO) if out.is_relative_to(REPO) else out}; "
                  f"total {record['total_seconds']:.0f}s[/dim]")


def _extrapolate(points: list[tuple[int, float]], n: int) -> float | None:
    """Linear (a + b n) fit through measured points; proportional from one point."""
    if not points:
        return None
    if len(points) == 1:
        return points[0][1] * n / points[0][0]
    (n1, t1), (n2, t2) = points[-2], points[-1]
    slope = (t2 - t1) / (n2 - n1)
    return max(t2 + slope * (n - n2), t2 * n / n2 if slope <= 0 else 0.0)


def _scaling(points: list[tuple[int, float]]) -> dict[str, Any]:
    if len(points) < 2:
        return {}
    (n1, t1), (n2, t2) = points[0], points[-1]
    exponent = math.log(t2 / t1) / math.log(n2 / n1) if t1 > 0 and t2 > 0 else float("nan")
    steps = ", ".join(f"{fmt_count(n)}: {t:.2f}s" for n, t in points)
    text = (f"{steps}; {n2 / n1:.0f}x events -> {t2 / t1:.2f}x time "
            f"(t ~ events^{exponent:.2f}; contexts fixed, so 1.0 would be linear)")
    return {"points": points, "exponent": exponent, "text": text}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1].startswith("_"):
        mode, rest = sys.argv[1], sys.argv[2:]
        if mode == "_generate":
            kind, folder, facts, entities, contexts = rest
            report(seconds=0.0, **generate(kind, Path(folder), int(facts), int(entities),
                                           int(contexts)))
        elif mode == "_measure":
            child_measure(rest[0], rest[1], Path(rest[2]))
        elif mode == "_check":
            child_check(rest[0], Path(rest[1]))
        else:
            raise SystemExit(f"unknown mode {mode}")
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=sorted(SCALES), default="full")
    parser.add_argument("--only", choices=["lookups", "aggregates"])
    parser.add_argument("--repeat", type=int, help="runs per phase (default: 3, fewer at full "
                        "scale once a phase has used its time budget)")
    parser.add_argument("--skip-sanity", action="store_true",
                        help="skip the aggregate sanity checks (lookups are always checked)")
    parser.add_argument("--json", default=str(REPO / "bench-data" / "timemachine.json"))
    run_benchmark(parser.parse_args())


if __name__ == "__main__":
    main()
