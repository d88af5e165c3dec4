"""Shared helpers for parity's benchmarks: phases in fresh subprocesses, medians, peak RSS, tables.

A measured phase runs in its own Python process so that its peak resident memory
(``ru_maxrss`` of that process) belongs to that phase alone and nothing is cached between
repeats except the operating system's file cache. The child prints one ``@@RESULT {json}``
line; the parent collects those lines, takes medians, and renders a rich table.
"""

from __future__ import annotations

import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

RESULT_MARK = "@@RESULT "
REPO = Path(__file__).resolve().parents[1]
console = Console(highlight=False, width=None if sys.stdout.isatty() else 150)


# --------------------------------------------------------------------------- child side


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (Linux reports KiB)."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024 if sys.platform != "darwin" else kib / 1024 / 1024


def report(**values: Any) -> None:
    """Child side: print the phase's result (with this process's peak RSS) for the parent."""
    values.setdefault("peak_rss_mb", peak_rss_mb())
    print(RESULT_MARK + json.dumps(values), flush=True)


class Stopwatch:
    """``with Stopwatch() as sw: ...`` then ``sw.seconds`` (wall clock, perf_counter)."""

    def __enter__(self) -> Stopwatch:
        self.start = time.perf_counter()
        self.seconds = float("nan")
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


# -------------------------------------------------------------------------- parent side


class PhaseFailed(RuntimeError):
    """A child process failed or timed out."""

    def __init__(self, message: str, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


def run_child(script: Path, args: Sequence[str], timeout: float | None = None) -> dict[str, Any]:
    """Run ``python script *args`` in a fresh process and return its ``@@RESULT`` payload."""
    cmd = [sys.executable, str(script), *args]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env
        )
    except subprocess.TimeoutExpired:
        raise PhaseFailed(f"{shlex.join(args)}: timed out after {timeout:.0f}s", True) from None
    results = [line[len(RESULT_MARK):] for line in proc.stdout.splitlines()
               if line.startswith(RESULT_MARK)]
    if proc.returncode != 0 or not results:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-25:])
        raise PhaseFailed(f"{shlex.join(args)}: exit code {proc.returncode}\n{tail}")
    payload: dict[str, Any] = json.loads(results[-1])
    return payload


@dataclass
class Phase:
    """A measured phase: several runs of one child command."""

    name: str
    runs: list[dict[str, Any]] = field(default_factory=list)
    estimated_seconds: float | None = None  # set instead of runs when not measured
    note: str = ""

    @property
    def seconds(self) -> float | None:
        """Median wall time over the runs (or the estimate when nothing ran)."""
        if self.runs:
            return statistics.median(r["seconds"] for r in self.runs)
        return self.estimated_seconds

    @property
    def all_seconds(self) -> list[float]:
        return [r["seconds"] for r in self.runs]

    @property
    def peak_rss_mb(self) -> float | None:
        """Highest peak RSS over the runs (the conservative figure)."""
        return max((r["peak_rss_mb"] for r in self.runs), default=None)

    @property
    def estimated(self) -> bool:
        return not self.runs and self.estimated_seconds is not None


def measure(
    name: str,
    script: Path,
    args: Sequence[str],
    repeat: int,
    budget_seconds: float,
    timeout: float | None = None,
    on_run: Callable[[dict[str, Any]], None] | None = None,
) -> Phase:
    """Run a child ``repeat`` times (fewer once ``budget_seconds`` of wall time is spent)."""
    phase = Phase(name)
    spent = 0.0
    for i in range(repeat):
        started = time.perf_counter()
        result = run_child(script, args, timeout)
        spent += time.perf_counter() - started
        phase.runs.append(result)
        if on_run:
            on_run(result)
        if spent >= budget_seconds and i + 1 < repeat:
            phase.note = f"{i + 1} of {repeat} runs (time budget)"
            break
    return phase


def fmt_seconds(value: float | None, estimated: bool = False) -> str:
    if value is None:
        return "-"
    text = f"{value:.2f}" if value < 100 else f"{value:.0f}"
    return f"~{text} (est.)" if estimated else text


def fmt_count(n: int | float) -> str:
    n = float(n)
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= size:
            text = f"{n / size:.2f}".rstrip("0").rstrip(".")
            return text + suffix
    return f"{n:.0f}"


def render_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print a compact rich table; numeric-looking columns are right-aligned."""
    table = Table(title=title, title_justify="left", show_lines=False, pad_edge=False)
    for col in columns:
        table.add_column(col, justify="left" if col in ("phase", "goal", "note") else "right")
    for row in rows:
        table.add_row(*row)
    console.print(table)


def exact_command() -> str:
    """The command line that ran this benchmark, as it can be pasted into a shell."""
    exe = os.path.relpath(sys.executable, REPO) if sys.executable.startswith(str(REPO)) else sys.executable
    return shlex.join([exe, *sys.argv])


def machine() -> dict[str, Any]:
    """A few facts about the machine, for the JSON record."""
    import platform

    info: dict[str, Any] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                            "platform": platform.platform()}
    try:
        with open("/proc/meminfo") as handle:
            info["mem_total_gib"] = round(int(handle.readline().split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return info
