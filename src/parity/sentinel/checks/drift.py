"""Feature distributions: the candidate's training rows against recent live logged features.

Per feature, on at most ``max_rows`` rows per side (a seeded random sample):

- numbers (ints, floats, bools, timestamps): ``bins`` quantile bins of the training values
  plus a bin for missing values; PSI over those bins, and a two-sample KS test on the values
  (with a chi-squared test of the missing rate beside it);
- strings: the ``max_categories`` most common training categories, "(other)" and
  "(missing)"; PSI over those, and a chi-squared test.

A feature drifts when its PSI exceeds both ``psi`` and the PSI that sampling noise alone
reaches at level ``alpha`` for these sample sizes, *and* the test rejects at ``alpha``
divided by the number of features (Bonferroni). Small samples therefore need a larger shift,
and a huge sample cannot flag a shift too small to matter. Features with fewer than
``min_samples`` rows on either side are "not enough data".
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa

from parity.sentinel.context import CheckContext
from parity.sentinel.stats import (
    binned_counts,
    chi2_contingency,
    ks_2samp,
    psi,
    psi_noise_threshold,
    quantile_edges,
)
from parity.sentinel.verdict import CheckResult, Finding

OTHER, MISSING = "(other)", "(missing)"


class DriftCheck:
    """PSI plus KS / chi-squared per feature, with sample-size aware thresholds."""

    name = "drift"
    needs_candidate = False

    def run(self, ctx: CheckContext) -> CheckResult:
        """Compare every feature the candidate reads that both tables hold."""
        config = ctx.config.drift
        if ctx.training is None or ctx.training.num_rows == 0:
            return CheckResult.not_enough_data(
                self.name, "no training rows are recorded for this version; register it with "
                "training_set={'path': <its training set file>} so drift can be measured")
        if ctx.shadow is None or ctx.shadow.num_rows == 0:
            return CheckResult.not_enough_data(
                self.name, "no recent live feature values (the feature log is empty)")
        wanted = list(config.features or ctx.candidate_features())
        if not wanted:
            wanted = [c for c in ctx.training.column_names if c in ctx.shadow.column_names
                      and c not in (ctx.label, "at")]
        present = [f for f in wanted
                   if f in ctx.training.column_names and f in ctx.shadow.column_names]
        absent = [f for f in wanted if f not in present]
        rng = np.random.default_rng(ctx.config.seed)
        train = _sample(ctx.training, present, config.max_rows, rng)
        live = _sample(ctx.shadow, present, config.max_rows, rng)
        level = config.alpha / max(len(present), 1)
        rows, figures = [], []
        for name in present:
            row, figure = _compare(name, train.column(name), live.column(name), config, level)
            rows.append(row)
            figures.append(figure)
        evidence: dict[str, Any] = {
            "features": rows, "not_compared": absent, "alpha": config.alpha,
            "alpha_per_feature": level, "psi_threshold": config.psi,
            "rows_training": ctx.training.num_rows, "rows_live": ctx.shadow.num_rows,
        }
        figures.sort(key=lambda f: -(f["psi"] if f["psi"] is not None else -1))
        drifted = sorted((r for r in rows if r["status"] == "drifted"), key=lambda r: -r["psi"])
        judged = [r for r in rows if r["status"] != "not_enough_data"]
        if len(drifted) > config.max_drifted:
            listed = "; ".join(
                f"{r['feature']} (PSI {r['psi']:.3f} > {r['psi_limit']:.3f}, {r['test']} "
                f"p={_p(r['pvalue'])})" for r in drifted[:5])
            more = f" and {len(drifted) - 5} more" if len(drifted) > 5 else ""
            return CheckResult.failed(
                self.name,
                [Finding("drift.drifted",
                         f"{len(drifted)} feature(s) drifted between training and recent "
                         f"traffic: {listed}{more}; retrain on recent data or find the "
                         f"upstream change")],
                evidence=evidence, figures={"distributions": figures},
            )
        if not judged:
            return CheckResult.not_enough_data(
                self.name,
                f"too few rows to compare distributions (need {config.min_samples} per side; "
                f"training has {train.num_rows}, live {live.num_rows})",
                evidence=evidence, figures={"distributions": figures},
            )
        worst = max(judged, key=lambda r: r["psi"])
        return CheckResult.passed(
            self.name,
            f"{len(judged)} feature(s) stable (largest PSI {worst['psi']:.3f} for "
            f"{worst['feature']}); {len(drifted)} drifted, {config.max_drifted} allowed",
            evidence=evidence, figures={"distributions": figures},
        )


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
        labels = _bin_labels(edges)
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


def _bin_labels(edges: np.ndarray) -> list[str]:
    if len(edges) == 0:
        return ["all", MISSING]
    labels = [f"< {edges[0]:.3g}"]
    labels += [f"{lo:.3g}-{hi:.3g}" for lo, hi in zip(edges[:-1], edges[1:])]
    labels.append(f">= {edges[-1]:.3g}")
    return [*labels, MISSING]


def _p(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return "<1e-16" if value < 1e-16 else f"{value:.2g}"
