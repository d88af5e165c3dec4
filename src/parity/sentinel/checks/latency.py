"""Latency: the candidate's p99 time to score one request, within a budget.

Times ``requests`` calls of the serving path (feature values of ``batch_rows`` rows as dicts
-> ``predict_rows``: build the Arrow table, encode, predict, decode), after ``warmup`` calls,
on real shadow rows (else training rows). Stops early after ``max_seconds`` so that a very
slow model cannot stall the sentinel; the p99 of what was timed is then judged.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from parity.sentinel.checks import candidate_missing
from parity.sentinel.context import CheckContext
from parity.sentinel.stats import percentiles
from parity.sentinel.verdict import CheckResult, Finding


class LatencyCheck:
    """p99 of single-request scoring time against ``latency.p99_ms``."""

    name = "latency"
    needs_candidate = True

    def run(self, ctx: CheckContext) -> CheckResult:
        """Time the serving path on real rows."""
        skipped = candidate_missing(self.name, ctx)
        if skipped is not None:
            return skipped
        config = ctx.config.latency
        table = next((t for t in (ctx.shadow, ctx.training) if t is not None and t.num_rows),
                     None)
        if table is None:
            return CheckResult.not_enough_data(self.name, "no rows to time the model on")
        predictor = ctx.candidate
        features = [f for f in getattr(predictor, "features", []) if f in table.column_names]
        pool = table.select(features).slice(0, 1000).to_pylist() if features else []
        if not pool:
            return CheckResult.not_enough_data(self.name, "the rows hold none of the model's "
                                               "features")
        size = max(config.batch_rows, 1)
        batches = [[pool[(i * size + j) % len(pool)] for j in range(size)]
                   for i in range(config.warmup + config.requests)]
        call = predictor.predict_rows if hasattr(predictor, "predict_rows") else None
        timings: list[float] = []
        deadline = time.perf_counter() + config.max_seconds
        stopped_early = False
        for i, batch in enumerate(batches):
            started = time.perf_counter()
            if call is not None:
                call(batch)
            else:
                predictor.predict_table(table.slice(i % table.num_rows, size))
            finished = time.perf_counter()
            if i >= config.warmup:
                timings.append((finished - started) * 1000)
            if finished > deadline:
                stopped_early = True
                break
        if not timings:
            timings = [(time.perf_counter() - started) * 1000]
        ms = np.array(timings)
        stats = percentiles(ms, (50, 90, 99))
        evidence: dict[str, Any] = {**{f"{k}_ms": v for k, v in stats.items()},
                                    "max_ms": float(ms.max()), "requests": len(ms),
                                    "batch_rows": size, "budget_p99_ms": config.p99_ms,
                                    "stopped_early": stopped_early}
        figures = {"latency_ms": [round(float(t), 4) for t in ms]}
        p99 = stats["p99"]
        if p99 > config.p99_ms:
            early = (f" (stopped after {len(ms)} requests at the {config.max_seconds:g}s cap)"
                     if stopped_early else "")
            return CheckResult.failed(
                self.name,
                [Finding("latency.p99",
                         f"p99 scoring time {p99:.2f} ms exceeds the budget of "
                         f"{config.p99_ms:g} ms (p50 {stats['p50']:.2f} ms){early}; make the "
                         f"model cheaper or raise latency.p99_ms if serving allows it")],
                evidence=evidence, figures=figures,
            )
        return CheckResult.passed(
            self.name,
            f"p99 {p99:.2f} ms within the {config.p99_ms:g} ms budget over {len(ms)} requests",
            evidence=evidence, figures=figures,
        )
