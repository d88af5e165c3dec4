"""Latency: judge the candidate's scoring time, not the machine it happens to run on.

Two questions, both on the serving path (feature values of ``batch_rows`` rows as dicts ->
``predict_rows``: build the Arrow table, encode, predict, decode), on real shadow rows (else
training rows), after ``warmup`` calls:

1. **Relative to live.** Candidate and live are timed *interleaved* on the same rows in the
   same run (live, candidate, candidate, live, ...), so a busy machine slows both alike. The
   ratio of their median per-call times gets a paired bootstrap interval; the check fails when
   the whole interval lies above ``max_ratio`` (and the candidate's median is above
   ``min_ms``: sub-millisecond differences do not matter to a request).
2. **Absolute budget.** A robust figure (the ``budget_quantile`` of per-call times, p90 by
   default, not a p99 that one descheduled call decides) against ``budget_ms``. A run over
   budget is repeated once; only when the second run is over budget too does the check fail,
   and not when live is over the same budget in the same run while the candidate is not
   slower than live (a warning, ``latency.live_too``: the machine or the budget is at fault).

Scoring runs with ``scoring_threads`` BLAS/OpenMP threads per call (see
``context.scoring_threads``): a one-row predict that spins up a thread pool per call measures
the pool, not the model. Stops early after ``max_seconds`` per run so that a very slow model
cannot stall the sentinel.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from parity.sentinel.checks import candidate_missing
from parity.sentinel.context import CheckContext, scoring_threads
from parity.sentinel.stats import percentiles, ratio_of_medians
from parity.sentinel.verdict import CheckResult, Finding

Call = Callable[[], object]


class LatencyCheck:
    """Candidate/live time ratio with an interval, plus an absolute budget confirmed twice."""

    name = "latency"
    needs_candidate = True

    def run(self, ctx: CheckContext) -> CheckResult:
        """Time the serving path on real rows."""
        skipped = candidate_missing(self.name, ctx)
        if skipped is not None:
            return skipped
        config = ctx.config.latency
        table = next((t for t in (ctx.shadow, ctx.traffic, ctx.training)
                      if t is not None and t.num_rows), None)
        if table is None:
            return CheckResult.not_enough_data(self.name, "no rows to time the model on")
        candidate = _calls(ctx.candidate, table, config)
        if candidate is None:
            return CheckResult.not_enough_data(self.name, "the rows hold none of the model's "
                                               "features")
        live = _calls(ctx.live, table, config) if ctx.live is not None else None
        with scoring_threads(ctx.config.scoring_threads):
            first = _timed_run(candidate, live, config)
            runs = [first]
            if _over_budget(first["candidate"], config):
                runs.append(_timed_run(candidate, live, config))  # confirm before failing
        if not len(runs[-1]["candidate"]):
            return CheckResult.not_enough_data(
                self.name, f"no request was timed (latency.requests is {config.requests})")
        return _judge(ctx, runs)


def _calls(predictor: Any, table: pa.Table, config: Any) -> list[Call] | None:
    """One zero-argument call per timed request (warmup first), each scoring real rows."""
    features = [f for f in getattr(predictor, "features", []) if f in table.column_names]
    if not features:
        return None
    pool = table.select(features).slice(0, 1000).to_pylist()
    size = max(config.batch_rows, 1)
    total = config.warmup + config.requests
    batches = [[pool[(i * size + j) % len(pool)] for j in range(size)] for i in range(total)]
    rows_call = getattr(predictor, "predict_rows", None)
    if callable(rows_call):
        return [_bind(rows_call, batch) for batch in batches]
    return [_bind(predictor.predict_table, table.slice((i * size) % table.num_rows, size))
            for i in range(total)]


def _bind(function: Callable[[Any], object], argument: Any) -> Call:
    return lambda: function(argument)


#: The timer every measurement reads; tests replace it with a fake clock so that no
#: correctness test depends on how busy the machine is.
clock: Callable[[], float] = time.perf_counter


def _timed_run(candidate: Sequence[Call], live: Sequence[Call] | None,
               config: Any) -> dict[str, Any]:
    """Per-call milliseconds of the candidate (and live, interleaved on the same rows)."""
    cand_ms: list[float] = []
    live_ms: list[float] = []
    deadline = clock() + config.max_seconds
    stopped_early = False
    for i, call in enumerate(candidate):
        # Alternate who goes first so that neither always gets the warm cache.
        order = ((call, cand_ms), (live[i], live_ms)) if live is not None else ((call, cand_ms),)
        if i % 2 and live is not None:
            order = order[::-1]
        for function, out in order:
            started = clock()
            function()
            elapsed = (clock() - started) * 1000
            if i >= config.warmup:
                out.append(elapsed)
        if clock() > deadline and i >= config.warmup:
            stopped_early = i + 1 < len(candidate)
            break
    return {"candidate": np.array(cand_ms), "live": np.array(live_ms) if live else None,
            "stopped_early": stopped_early}


def _over_budget(ms: np.ndarray, config: Any) -> bool:
    return config.budget_ms is not None and _figure(ms, config) > config.budget_ms


def _figure(ms: np.ndarray, config: Any) -> float:
    return float(np.quantile(ms, config.budget_quantile)) if len(ms) else float("nan")


def _judge(ctx: CheckContext, runs: list[dict[str, Any]]) -> CheckResult:
    config = ctx.config.latency
    name = f"p{config.budget_quantile * 100:g}"
    last = runs[-1]
    cand = last["candidate"]
    figures = {"latency_ms": [round(float(t), 4) for t in cand]}
    evidence: dict[str, Any] = {
        **{f"{k}_ms": v for k, v in percentiles(cand, (50, 90, 99)).items()},
        "max_ms": float(cand.max()), "requests": len(cand), "batch_rows": config.batch_rows,
        "budget_ms": config.budget_ms, "budget_quantile": config.budget_quantile,
        "runs": [{"candidate_figure_ms": _figure(r["candidate"], config),
                  "candidate_median_ms": float(np.median(r["candidate"])),
                  "live_median_ms": (float(np.median(r["live"])) if r["live"] is not None
                                     and len(r["live"]) else None),
                  "stopped_early": r["stopped_early"]} for r in runs],
        "threads": ctx.config.scoring_threads,
    }
    findings: list[Finding] = []
    warnings: list[Finding] = []
    decided: list[str] = []
    live = last["live"]
    if live is not None and len(live) and len(cand) == len(live):
        figures["live_latency_ms"] = [round(float(t), 4) for t in live]
        ratio = ratio_of_medians(cand, live, n_boot=config.bootstrap, seed=ctx.config.seed,
                                 confidence=config.confidence)
        evidence["ratio"] = ratio.to_dict()
        evidence["max_ratio"] = config.max_ratio
        text = (f"candidate/live median time {ratio.estimate:.2f}x ({config.confidence:.0%} CI "
                f"{ratio.low:.2f} to {ratio.high:.2f}; live v{ctx.live_version} "
                f"{np.median(live):.2f} ms, candidate {np.median(cand):.2f} ms)")
        slower = (config.max_ratio is not None and ratio.low > config.max_ratio
                  and float(np.median(cand)) > config.min_ms)
        if slower:
            findings.append(Finding(
                "latency.ratio",
                f"the candidate is slower than live beyond the allowed {config.max_ratio:g}x: "
                f"{text}, timed interleaved on the same rows; make the model cheaper or raise "
                f"latency.max_ratio if serving allows it"))
        decided.append(text)
    else:
        evidence["ratio"] = None
        decided.append("no live model to time against")
    if config.budget_ms is not None:
        over = [_over_budget(r["candidate"], config) for r in runs]
        figure = _figure(cand, config)
        live_over = live is not None and len(live) > 0 and _over_budget(live, config)
        if all(over):
            early = (f" (stopped at the {config.max_seconds:g}s cap)"
                     if last["stopped_early"] else "")
            text = (f"{name} scoring time {figure:.2f} ms exceeds the budget of "
                    f"{config.budget_ms:g} ms in {len(runs)} runs out of {len(runs)} (first run "
                    f"{_figure(runs[0]['candidate'], config):.2f} ms){early}")
            if live_over and not any(f.code == "latency.ratio" for f in findings):
                # Live is over the same budget in the same run and the candidate is not
                # slower than live: the machine or the budget, not the candidate.
                warnings.append(Finding(
                    "latency.live_too", f"{text}; live v{ctx.live_version} is over it too "
                    f"({_figure(live, config):.2f} ms) in the same run, so this does not stop "
                    f"the candidate"))
            else:
                findings.append(Finding(
                    "latency.budget", f"{text}; make the model cheaper or raise "
                    f"latency.budget_ms if serving allows it"))
        else:
            confirmed = " after a second run" if len(runs) > 1 else ""
            decided.append(f"{name} {figure:.2f} ms within the {config.budget_ms:g} ms "
                           f"budget{confirmed}")
    if findings:
        return CheckResult.failed("latency", findings, evidence=evidence, figures=figures,
                                  warnings=warnings)
    return CheckResult.passed("latency", "; ".join(decided) + f" over {len(cand)} requests",
                              evidence=evidence, figures=figures, warnings=warnings)

