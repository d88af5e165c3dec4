"""Segments: a candidate that is fine on average but worse for a group of users is stopped.

A pooled metric hides a segment too small to move it (issue 16: ranking reversed for the top
2% of spenders moved the pooled AUC by -0.005). So the shadow rows are cut into segments and
in each the candidate is compared with live by the same paired bootstrap as the shadow
accuracy check, on the same metric.

Segments (``segments.columns``, default: every categorical feature the candidate reads, and
the ``top_numeric`` numeric features whose values go most with live's scores):

- a categorical column (strings, bools, request fields): one segment per value with at least
  ``min_rows`` rows (at most ``max_categories``, the most common);
- a numeric column: ``bands`` quantile bands, plus the top and bottom ``tails`` (``0.1`` is
  the top and the bottom 10%) so a small extreme group gets a segment of its own.

Segments smaller than ``min_rows`` or with fewer than ``min_per_class`` rows of a class are
listed but not judged. The direction of the test differs from the pooled one on purpose: many
small segments cannot each *prove* non-inferiority, so a segment fails when the candidate is
*shown worse* than live by more than ``margin`` there: one-sided p-value of "difference >=
-margin" (normal approximation with the bootstrap standard error), Holm-corrected over all
judged segments at family level ``alpha``. A small segment therefore needs a large effect.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from parity.sentinel.checks import candidate_missing
from parity.sentinel.context import CANDIDATE, LIVE, CheckContext
from parity.sentinel.stats import PairedBootstrap
from parity.sentinel.verdict import CheckResult, Finding
from parity.timeutil import us_to_datetime


@dataclass(frozen=True)
class Segment:
    """One group of shadow rows: ``column`` (op) ``label``, and which rows it holds."""

    column: str
    label: str
    rows: np.ndarray  # boolean mask over the shadow rows

    @property
    def name(self) -> str:
        """``column = value`` or ``column in band``."""
        return f"{self.column} {self.label}"


class SegmentsCheck:
    """Per-segment paired bootstrap against live, Holm-corrected."""

    name = "segments"
    needs_candidate = True

    def run(self, ctx: CheckContext) -> CheckResult:
        """Cut the shadow rows into segments and compare candidate and live in each."""
        skipped = candidate_missing(self.name, ctx)
        if skipped is not None:
            return skipped
        config = ctx.config.segments
        metric = config.metric or ctx.config.shadow_accuracy.metric
        margin = config.margin if config.margin is not None else \
            ctx.config.shadow_accuracy.margin
        if ctx.shadow is None or ctx.shadow.num_rows == 0:
            return CheckResult.not_enough_data(self.name, ctx.no_shadow_reason())
        if ctx.live is None:
            return CheckResult.skipped(self.name, "no live model to compare segments with")
        if ctx.missing_features(CANDIDATE) or ctx.missing_features(LIVE):
            return CheckResult.skipped(self.name, "the shadow rows lack features a model reads "
                                       "(see contract)")
        try:
            y_all, cand_all, live_all = ctx.labels(), ctx.scores(CANDIDATE), ctx.scores(LIVE)
        except (TypeError, LookupError, RuntimeError) as err:
            return CheckResult.skipped(self.name, str(err))
        keep = np.isfinite(y_all) & np.isfinite(cand_all) & np.isfinite(live_all)
        shadow = ctx.shadow.filter(pa.array(keep))
        y, cand, live = y_all[keep], cand_all[keep], live_all[keep]
        segments, columns = _segments(ctx, shadow, live)
        rows = [_compare(s, y, cand, live, metric, margin, ctx) for s in segments]
        judged = [r for r in rows if r["status"] == "judged"]
        _holm(judged, config.alpha)
        rows.sort(key=_worst_first)
        evidence: dict[str, Any] = {
            "metric": metric, "margin": margin, "alpha": config.alpha, "columns": columns,
            "segments": rows, "judged": len(judged), "min_rows": config.min_rows,
        }
        failed = [r for r in rows if r["status"] == "worse"]
        if failed:
            listed = "; ".join(_describe(r) for r in failed[:3])
            more = f" and {len(failed) - 3} more" if len(failed) > 3 else ""
            return CheckResult.failed(self.name, [Finding(
                "segments.inferior",
                f"the candidate is worse than live v{ctx.live_version} in {len(failed)} of "
                f"{len(judged)} segments (Holm-corrected at {config.alpha:g}): {listed}{more}; "
                f"find out what the new training changed for them")],
                evidence=evidence, figures={"segments": rows[:40]})
        if not judged:
            return CheckResult.not_enough_data(
                self.name, f"no segment has {config.min_rows} rows with {config.min_per_class} "
                f"of each class (of {len(rows)} segments over {', '.join(columns) or 'nothing'})",
                evidence=evidence)
        worst = next(r for r in rows if r["status"] == "judged")
        return CheckResult.passed(
            self.name,
            f"no segment shown worse than live among {len(judged)} judged; worst: "
            f"{_describe(worst)}", evidence=evidence, figures={"segments": rows[:40]})


def _describe(row: dict[str, Any]) -> str:
    return (f"{row['segment']} ({row['rows']} rows): {row['metric']} {row['candidate']:.3f} vs "
            f"{row['live']:.3f}, difference {row['estimate']:+.3f} ({row['confidence']:.0%} CI "
            f"{row['low']:+.3f} to {row['high']:+.3f}, Holm p {_p(row.get('p_holm'))})")


def _p(value: Any) -> str:
    return "-" if value is None else ("<1e-6" if value < 1e-6 else f"{value:.2g}")


def _worst_first(row: dict[str, Any]) -> tuple[int, float]:
    order = {"worse": 0, "judged": 1, "too_small": 2}
    estimate = row.get("estimate")
    return order.get(row["status"], 3), (estimate if estimate is not None
                                         and math.isfinite(estimate) else math.inf)


def _compare(segment: Segment, y: np.ndarray, cand: np.ndarray, live: np.ndarray, metric: str,
             margin: float, ctx: CheckContext) -> dict[str, Any]:
    config = ctx.config.segments
    mask = segment.rows
    ys = y[mask]
    positives = int(ys.sum()) if np.all((ys == 0) | (ys == 1)) else None
    row: dict[str, Any] = {"segment": segment.name, "column": segment.column,
                           "rows": int(mask.sum()), "positives": positives, "metric": metric,
                           "confidence": ctx.config.shadow_accuracy.confidence}
    small = row["rows"] < config.min_rows or (
        positives is not None and min(positives, row["rows"] - positives) < config.min_per_class)
    if small:
        return {**row, "status": "too_small", "estimate": None}
    boot = PairedBootstrap(ys, {CANDIDATE: cand[mask], LIVE: live[mask]}, [metric],
                           n_boot=config.bootstrap, seed=ctx.config.seed)
    diff = boot.improvement(CANDIDATE, LIVE, metric, row["confidence"])
    # The spread of the paired differences (the sign does not change it).
    se = float(np.nanstd(boot.replicates[(CANDIDATE, metric)] - boot.replicates[(LIVE, metric)]))
    if se > 0:
        p = NormalDist().cdf((diff.estimate + margin) / se)
    else:
        p = 0.0 if diff.estimate < -margin else 1.0
    return {**row, "status": "judged", "candidate": boot.estimates[(CANDIDATE, metric)],
            "live": boot.estimates[(LIVE, metric)], **diff.to_dict(), "p": p}


def _holm(rows: list[dict[str, Any]], alpha: float) -> None:
    """Holm's step-down: mark rows ``worse`` and set the adjusted p-value ``p_holm``."""
    order = sorted(range(len(rows)), key=lambda i: rows[i]["p"])
    m = len(rows)
    running = 0.0
    rejecting = True
    for rank, i in enumerate(order):
        adjusted = min(1.0, (m - rank) * rows[i]["p"])
        running = max(running, adjusted)
        rows[i]["p_holm"] = running
        rejecting = rejecting and rows[i]["p"] <= alpha / (m - rank)
        if rejecting:
            rows[i]["status"] = "worse"


def _segments(ctx: CheckContext, shadow: pa.Table,
              live: np.ndarray) -> tuple[list[Segment], list[str]]:
    config = ctx.config.segments
    features = [f for f in ctx.candidate_features() if f in shadow.column_names]
    if config.columns is not None:
        columns = [c for c in config.columns if c in shadow.column_names]
    else:
        categorical = [f for f in [*features, *ctx.request_fields]
                       if f in shadow.column_names and _categorical(shadow.column(f).type)]
        numeric = [f for f in features if f not in categorical
                   and _numeric(shadow.column(f).type)]
        ranked = sorted(numeric, key=lambda f: -_association(shadow.column(f), live))
        columns = list(dict.fromkeys([*categorical, *ranked[:config.top_numeric]]))
    segments: list[Segment] = []
    for column in columns:
        values = shadow.column(column)
        if _categorical(values.type):
            segments += _category_segments(column, values, config)
        elif _numeric(values.type):
            segments += _band_segments(column, values, config)
    return segments, columns


def _categorical(kind: pa.DataType) -> bool:
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind)
                or pa.types.is_boolean(kind) or pa.types.is_dictionary(kind))


def _numeric(kind: pa.DataType) -> bool:
    return bool(pa.types.is_integer(kind) or pa.types.is_floating(kind)
                or pa.types.is_timestamp(kind))


def _as_float(values: pa.ChunkedArray) -> np.ndarray:
    if pa.types.is_timestamp(values.type):
        values = values.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
    return np.asarray(values.cast(pa.float64()).to_numpy(zero_copy_only=False),
                      dtype=np.float64)


def _association(values: pa.ChunkedArray, scores: np.ndarray) -> float:
    """|Spearman correlation| of a feature with live's scores (0 when undefined)."""
    x = _as_float(values)
    ok = np.isfinite(x)
    if ok.sum() < 3:
        return 0.0
    rx = np.argsort(np.argsort(x[ok])).astype(np.float64)
    ry = np.argsort(np.argsort(scores[ok])).astype(np.float64)
    if rx.std() == 0 or ry.std() == 0:
        return 0.0
    return float(abs(np.corrcoef(rx, ry)[0, 1]))


def _category_segments(column: str, values: pa.ChunkedArray, config: Any) -> list[Segment]:
    text = values.cast(pa.string())
    counts = sorted(((c["values"], int(c["counts"])) for c in text.value_counts().to_pylist()),
                    key=lambda vc: -vc[1])
    out = []
    for value, _ in counts[:config.max_categories]:
        if value is None:
            mask = np.asarray(pc.is_null(text).to_numpy(zero_copy_only=False), dtype=bool)
            out.append(Segment(column, "is missing", mask))
            continue
        mask = np.asarray(pc.fill_null(pc.equal(text, value), False)
                          .to_numpy(zero_copy_only=False), dtype=bool)
        out.append(Segment(column, f"= {value}", mask))
    return out


def _band_segments(column: str, values: pa.ChunkedArray, config: Any) -> list[Segment]:
    x = _as_float(values)
    finite = x[np.isfinite(x)]
    if len(finite) == 0:
        return []
    show = _date if pa.types.is_timestamp(values.type) else (lambda v: f"{v:.4g}")
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, config.bands + 1)[1:-1]))
    out: list[Segment] = []
    bounds = [-math.inf, *edges.tolist(), math.inf]
    for low, high in zip(bounds[:-1], bounds[1:]):
        mask = (x >= low) & (x < high)
        label = ("< " + show(high) if low == -math.inf else
                 ">= " + show(low) if high == math.inf else f"in [{show(low)}, {show(high)})")
        out.append(Segment(column, label, mask))
    for tail in config.tails:
        top = float(np.quantile(finite, 1 - tail))
        bottom = float(np.quantile(finite, tail))
        out.append(Segment(column, f">= {show(top)} (top {tail:.0%})", x >= top))
        out.append(Segment(column, f"<= {show(bottom)} (bottom {tail:.0%})", x <= bottom))
    out.append(Segment(column, "is missing", ~np.isfinite(x)))
    seen: set[bytes] = set()
    unique = []
    for segment in out:  # ties can make a tail equal to a band: judge each group once
        key = np.packbits(segment.rows).tobytes()
        if segment.rows.any() and key not in seen:
            seen.add(key)
            unique.append(segment)
    return unique


def _date(microseconds: float) -> str:
    return us_to_datetime(int(microseconds)).strftime("%Y-%m-%d")
