"""Drift judged relative to live: the candidate is blamed for its own data, not for the world.

Per feature the candidate reads, on at most ``max_rows`` rows per side (a seeded sample):

- numbers (ints, floats, bools, timestamps): ``bins`` quantile bins of the training values
  plus a bin for missing values; PSI over those bins, and a two-sample KS test on the values
  (with a chi-squared test of the missing rate beside it); timestamps are binned as dates;
- strings: the ``max_categories`` most common training categories, "(other)" and
  "(missing)"; PSI over those, and a chi-squared test.

A distribution *moved* when its PSI exceeds both ``psi`` and the PSI that sampling noise alone
reaches at level ``alpha`` for these sample sizes, *and* the test rejects at ``alpha`` divided
by the number of features (Bonferroni).

Each feature is compared twice on the same recent traffic: the candidate's training rows
against it, and the live model's training rows against it. The candidate fails for a feature
only when its own training data moved away from today's traffic *and* by more than live's did
(its PSI exceeds live's by more than ``psi``): it was trained on data unlike what it will
serve, where live was not. When both moved, the world changed under both models: that is a
warning with the evidence (``drift.world_moved``), not a candidate failure. With no live model
the candidate's own comparison decides. The candidate's outputs are compared with live's on
the same traffic (PSI over live's output quantiles); a large shift is a warning, for the
accuracy and calibration checks to judge with labels.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa

from parity.sentinel.context import CANDIDATE, LIVE, CheckContext, as_numbers
from parity.sentinel.stats import (
    binned_counts,
    chi2_contingency,
    ks_2samp,
    psi,
    psi_noise_threshold,
    quantile_edges,
)
from parity.sentinel.verdict import CheckResult, Finding
from parity.timeutil import us_to_datetime

OTHER, MISSING = "(other)", "(missing)"


class DriftCheck:
    """Per feature PSI plus KS / chi-squared, candidate's training data against live's."""

    name = "drift"
    needs_candidate = True  # the output comparison scores the candidate; inputs need not

    def run(self, ctx: CheckContext) -> CheckResult:
        """Compare every feature the candidate reads that the tables hold."""
        config = ctx.config.drift
        traffic = ctx.traffic if ctx.traffic is not None else ctx.shadow
        if ctx.training is None or ctx.training.num_rows == 0:
            return CheckResult.not_enough_data(
                self.name, "no training rows are recorded for this version; register it with "
                "training_set={'path': <its training set file>} so drift can be measured")
        if traffic is None or traffic.num_rows == 0:
            return CheckResult.not_enough_data(
                self.name, "no recent traffic: the feature log holds no predictions of this "
                "model in the shadow window")
        wanted = list(config.features or ctx.candidate_features())
        if not wanted:
            wanted = [c for c in ctx.training.column_names if c in traffic.column_names
                      and c not in (ctx.label, "at")]
        present = [f for f in wanted
                   if f in ctx.training.column_names and f in traffic.column_names]
        absent = [f for f in wanted if f not in present]
        rng = np.random.default_rng(ctx.config.seed)
        train = _sample(ctx.training, present, config.max_rows, rng)
        live_cols = [f for f in present if ctx.live_training is not None
                     and f in ctx.live_training.column_names]
        live_train = (_sample(ctx.live_training, live_cols, config.max_rows, rng)
                      if ctx.live_training is not None and ctx.live_training.num_rows else None)
        recent = _sample(traffic, present, config.max_rows, rng)
        level = config.alpha / max(len(present), 1)
        rows, figures = [], []
        for name in present:
            row, figure = _compare(name, train.column(name), recent.column(name), config, level)
            if live_train is not None and name in live_train.column_names:
                live_row, _ = _compare(name, live_train.column(name), recent.column(name),
                                       config, level)
                row["live_psi"], row["live_status"] = live_row["psi"], live_row["status"]
                row["status"] = _relative(row["status"], row["psi"], live_row, config.psi)
            else:
                row["live_psi"] = row["live_status"] = None
            figure["status"] = row["status"]
            rows.append(row)
            figures.append(figure)
        outputs = _outputs(ctx, traffic, config, rng)
        evidence: dict[str, Any] = {
            "features": rows, "not_compared": absent, "alpha": config.alpha,
            "alpha_per_feature": level, "psi_threshold": config.psi,
            "rows_training": ctx.training.num_rows, "rows_live": traffic.num_rows,
            "rows_live_training": None if ctx.live_training is None
            else ctx.live_training.num_rows, "outputs": outputs,
        }
        figures.sort(key=lambda f: -(f["psi"] if f["psi"] is not None else -1))
        warnings = _warnings(rows, outputs, ctx)
        extra: dict[str, Any] = {"evidence": evidence, "figures": {"distributions": figures},
                 "warnings": warnings}
        drifted = sorted((r for r in rows if r["status"] == "drifted"), key=lambda r: -r["psi"])
        judged = [r for r in rows if r["status"] != "not_enough_data"]
        if len(drifted) > config.max_drifted:
            listed = "; ".join(
                f"{r['feature']} (PSI {r['psi']:.3f} > {r['psi_limit']:.3f}"
                + (f", live's training data {r['live_psi']:.3f}" if r["live_psi"] is not None
                   else "")
                + f", {r['test']} p={_p(r['pvalue'])})" for r in drifted[:5])
            more = f" and {len(drifted) - 5} more" if len(drifted) > 5 else ""
            whose = ("than the live model's" if live_train is not None
                     else "(there is no live model's training data to compare with)")
            return CheckResult.failed(
                self.name,
                [Finding("drift.drifted",
                         f"{len(drifted)} feature(s) of the candidate's training data are "
                         f"further from recent traffic {whose}: {listed}{more}; retrain on "
                         f"data like what it will serve, or find the upstream change")],
                **extra,
            )
        if not judged:
            return CheckResult.not_enough_data(
                self.name,
                f"too few rows to compare distributions (need {config.min_samples} per side; "
                f"training has {train.num_rows}, traffic {recent.num_rows})", **extra)
        worst = max(judged, key=lambda r: r["psi"])
        moved = sum(r["status"] == "world_moved" for r in rows)
        return CheckResult.passed(
            self.name,
            f"{len(judged)} feature(s) judged against live's training data; largest PSI "
            f"{worst['psi']:.3f} for {worst['feature']}"
            + (f"; {moved} moved for live too (the world changed: see warnings)" if moved
               else "") + f"; {len(drifted)} blamed on the candidate, {config.max_drifted} "
            "allowed", **extra,
        )


def _relative(status: str, value: float, live: dict[str, Any], margin: float) -> str:
    """The candidate's status once live's drift on the same traffic is known."""
    if status != "drifted":
        return status
    if live["status"] == "drifted" and value <= live["psi"] + margin:
        return "world_moved"  # live's training data is as far from traffic: not the candidate
    return "drifted"


def _warnings(rows: list[dict[str, Any]], outputs: dict[str, Any] | None,
              ctx: CheckContext) -> list[Finding]:
    out: list[Finding] = []
    moved = sorted((r for r in rows if r["status"] == "world_moved"), key=lambda r: -r["psi"])
    if moved:
        listed = "; ".join(f"{r['feature']} (PSI {r['psi']:.3f} for the candidate, "
                           f"{r['live_psi']:.3f} for live)" for r in moved[:5])
        out.append(Finding(
            "drift.world_moved",
            f"recent traffic moved away from both models' training data in {len(moved)} "
            f"feature(s): {listed}; not the candidate's fault, but live is exposed too: "
            f"check the upstream data and plan a retrain on recent data"))
    if outputs is not None and outputs.get("status") == "shifted":
        out.append(Finding(
            "drift.outputs_shifted",
            f"the candidate's outputs differ from live v{ctx.live_version}'s on the same "
            f"{outputs['rows']} rows (PSI {outputs['psi']:.3f} > {outputs['psi_limit']:.3f}); "
            f"shadow accuracy and calibration judge whether for better or worse"))
    return out


def _outputs(ctx: CheckContext, traffic: pa.Table, config: Any,
             rng: np.random.Generator) -> dict[str, Any] | None:
    """Candidate vs live outputs on the same traffic rows (None: not both scorable)."""
    if ctx.candidate is None or ctx.live is None:
        return None
    try:
        if ctx.shadow is not None and ctx.shadow.num_rows:
            # The labelled traffic is already scored by both models for the other checks.
            cand, live = ctx.scores(CANDIDATE), ctx.scores(LIVE)
            rows = ctx.shadow.num_rows
        else:
            needed = (set(getattr(ctx.candidate, "features", []))
                      | set(getattr(ctx.live, "features", [])))
            if not needed <= set(traffic.column_names):
                return None
            sample = traffic if traffic.num_rows <= config.max_rows else traffic.take(
                np.sort(rng.choice(traffic.num_rows, config.max_rows, replace=False)))
            cand = as_numbers(ctx.candidate.predict_table(sample))
            live = as_numbers(ctx.live.predict_table(sample))
            rows = sample.num_rows
    except Exception as err:  # the accuracy and contract checks report scoring errors
        return {"status": "not_compared", "reason": f"{type(err).__name__}: {err}"}
    edges = quantile_edges(live, config.bins)
    expected, actual = binned_counts(live, edges), binned_counts(cand, edges)
    bins_used = int(np.sum((expected + actual) > 0))
    value = psi(expected, actual)
    limit = max(config.psi, psi_noise_threshold(len(live), len(cand), bins_used, config.alpha))
    return {"status": "shifted" if value > limit else "similar", "psi": value,
            "psi_limit": limit, "rows": rows,
            "live_mean": float(np.nanmean(live)), "candidate_mean": float(np.nanmean(cand))}


def _sample(table: pa.Table, columns: list[str], limit: int,
            rng: np.random.Generator) -> pa.Table:
    table = table.select(columns)
    if table.num_rows <= limit:
        return table
    return table.take(np.sort(rng.choice(table.num_rows, limit, replace=False)))


def _compare(name: str, train: pa.ChunkedArray, live: pa.ChunkedArray, config: Any,
             level: float) -> tuple[dict[str, Any], dict[str, Any]]:
    n, m = len(train), len(live)
    categorical = _is_text(train.type) or _is_text(live.type)
    if categorical:
        labels, expected, actual = _category_counts(train, live, config.max_categories)
        test = chi2_contingency(expected, actual)
        test_name = "chi2"
    else:
        a, b = _numbers(train), _numbers(live)
        edges = quantile_edges(a, config.bins)
        expected, actual = binned_counts(a, edges), binned_counts(b, edges)
        labels = _bin_labels(edges, pa.types.is_timestamp(train.type))
        ks = ks_2samp(a, b)
        missing = chi2_contingency(expected[-1:].tolist() + [n - expected[-1]],
                                   actual[-1:].tolist() + [m - actual[-1]])
        test_name, test = "ks", ks
        if math.isnan(ks.pvalue) or (not math.isnan(missing.pvalue) and missing.pvalue < ks.pvalue):
            test_name, test = "chi2(missing rate)", missing
    bins_used = int(np.sum((expected + actual) > 0))
    value = psi(expected, actual)
    limit = max(config.psi, psi_noise_threshold(n, m, bins_used, config.alpha))
    if min(n, m) < config.min_samples:
        status = "not_enough_data"
    elif value > limit and not math.isnan(test.pvalue) and test.pvalue < level:
        status = "drifted"
    else:
        status = "stable"
    row = {"feature": name, "kind": "category" if categorical else "number", "status": status,
           "psi": value, "psi_limit": limit, "test": test_name, "statistic": test.statistic,
           "pvalue": test.pvalue, "rows_training": n, "rows_live": m,
           "missing_training": float(expected[-1] / n) if n and not categorical else None,
           "missing_live": float(actual[-1] / m) if m and not categorical else None}
    total_e, total_a = max(expected.sum(), 1), max(actual.sum(), 1)
    figure = {"feature": name, "status": status, "psi": value, "labels": labels,
              "training": (expected / total_e).tolist(), "live": (actual / total_a).tolist()}
    return row, figure


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _numbers(column: pa.ChunkedArray) -> np.ndarray:
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
    elif pa.types.is_null(column.type):
        return np.full(len(column), np.nan)
    values = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=np.float64)


def _category_counts(train: pa.ChunkedArray, live: pa.ChunkedArray,
                     max_categories: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    def counts(column: pa.ChunkedArray) -> Counter[str]:
        result: Counter[str] = Counter()
        for value in column.value_counts().to_pylist():
            key = MISSING if value["values"] is None else str(value["values"])
            result[key] += int(value["counts"])
        return result

    a, b = counts(train.cast(pa.string())), counts(live.cast(pa.string()))
    top = [k for k, _ in a.most_common() if k != MISSING][:max_categories]
    labels = [*top, OTHER, MISSING]

    def vector(c: Counter[str]) -> np.ndarray:
        known = [c.get(k, 0) for k in top]
        other = sum(v for k, v in c.items() if k not in top and k != MISSING)
        return np.array([*known, other, c.get(MISSING, 0)], dtype=np.float64)

    return labels, vector(a), vector(b)


def _bin_labels(edges: np.ndarray, timestamps: bool = False) -> list[str]:
    if len(edges) == 0:
        return ["all", MISSING]
    show = format_edge_date if timestamps else (lambda v: f"{v:.3g}")
    labels = [f"< {show(edges[0])}"]
    labels += [f"{show(lo)} to {show(hi)}" for lo, hi in zip(edges[:-1], edges[1:])]
    labels.append(f">= {show(edges[-1])}")
    return [*labels, MISSING]


def format_edge_date(microseconds: float) -> str:
    """A bin edge of a timestamp feature (epoch microseconds) as a date, not ``1.79e+15``."""
    when = us_to_datetime(int(microseconds))
    if when.hour or when.minute or when.second:
        return when.strftime("%Y-%m-%d %H:%M")
    return when.strftime("%Y-%m-%d")


def _p(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return "<1e-16" if value < 1e-16 else f"{value:.2g}"
