"""Shadow accuracy: the candidate against the live model on recent labelled real traffic.

Both models score the same shadow rows (the feature log joined with its labels). The
candidate passes when the lower end of a paired bootstrap confidence interval of the metric
difference (candidate minus live, oriented so that higher is better) lies above ``-margin``:
non-inferiority shown by evidence, not by a point estimate. With no live model it must beat
``floor`` (the interval's worse end), or, without a floor, be shown better than a no-skill
model (a constant). An ``anchor`` model adds the same test against a fixed reference with
``anchor_margin``, so that many small accepted losses cannot add up.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from parity.sentinel.checks import candidate_missing
from parity.sentinel.context import ANCHOR, CANDIDATE, LIVE, CheckContext
from parity.sentinel.stats import (
    HIGHER_IS_BETTER,
    Interval,
    PairedBootstrap,
    metric_value,
    no_skill_predictions,
)
from parity.sentinel.verdict import CheckResult, Finding

_BINARY_METRICS = ("auc", "log_loss", "accuracy", "brier")
_REGRESSION_METRICS = ("mse", "mae")
BASELINE = "no_skill"


class ShadowAccuracyCheck:
    """Non-inferiority to live (and anchor) with a paired bootstrap interval."""

    name = "shadow_accuracy"
    needs_candidate = True

    def run(self, ctx: CheckContext) -> CheckResult:
        """Score, resample, compare."""
        skipped = candidate_missing(self.name, ctx)
        if skipped is not None:
            return skipped
        config = ctx.config.shadow_accuracy
        metric = config.metric
        if ctx.shadow is None or ctx.shadow.num_rows == 0:
            return CheckResult.not_enough_data(self.name, ctx.no_shadow_reason(),
                                               evidence=_window(ctx))
        missing = ctx.missing_features(CANDIDATE)
        if missing:
            return CheckResult.skipped(
                self.name, f"the shadow rows lack feature(s) {', '.join(missing)} that the "
                f"candidate reads, so it cannot be scored on real traffic (see contract)")
        try:
            y_all = ctx.labels()
            candidate = ctx.scores(CANDIDATE)
        except TypeError as err:
            return CheckResult.skipped(self.name, str(err))
        except LookupError as err:
            return CheckResult.not_enough_data(self.name, str(err))
        except RuntimeError as err:
            return CheckResult.failed(self.name, [Finding("shadow_accuracy.predict_error",
                                                          str(err))])
        if not np.all(np.isfinite(candidate)):
            return CheckResult.skipped(
                self.name, "the candidate's outputs contain NaN or infinity (see contract)")
        keep = np.isfinite(y_all)
        y, scores = y_all[keep], {CANDIDATE: candidate[keep]}
        notes: list[str] = []
        for which in (LIVE, ANCHOR):
            if ctx.predictor(which) is None or ctx.missing_features(which):
                continue
            try:
                values = ctx.scores(which)[keep]
            except (RuntimeError, TypeError) as err:
                notes.append(f"the {which} model could not be scored: {err}")
                continue
            if not np.all(np.isfinite(values)):
                notes.append(f"the {which} model's outputs contain NaN; it was left out")
                continue
            scores[which] = values
        evidence: dict[str, Any] = {**_window(ctx), "metric": metric, "rows": len(y),
                                    "margin": config.margin, "confidence": config.confidence,
                                    "bootstrap": config.bootstrap, "notes": notes}
        short = _too_few(y, metric, config.min_samples, config.min_per_class)
        if short and ctx.shadow_window is not None:
            short += f" ({ctx.shadow_window.describe()})"
        if short:
            return CheckResult.not_enough_data(self.name, short, evidence=evidence)
        if LIVE not in scores and config.floor is None:
            scores[BASELINE] = no_skill_predictions(metric, y)
        boot = PairedBootstrap(y, scores, [metric], n_boot=config.bootstrap, seed=ctx.config.seed)
        evidence["estimates"] = {k: boot.estimates[(k, metric)] for k in scores}
        evidence["other_metrics"] = _other_metrics(y, scores, metric)
        comparisons, findings = _judge(boot, ctx, metric, scores)
        evidence["comparisons"] = comparisons
        figures = {"intervals": comparisons,
                   "model_intervals": [{"model": k, **boot.interval(k, metric,
                                                                    config.confidence).to_dict()}
                                       for k in scores if k != BASELINE]}
        if findings:
            return CheckResult.failed(self.name, findings, evidence=evidence, figures=figures)
        first = comparisons[0]
        return CheckResult.passed(
            self.name,
            f"{metric} {first['description']}: {_fmt_interval(first)} on {len(y)} rows",
            evidence=evidence,
            figures=figures,
        )


def _window(ctx: CheckContext) -> dict[str, Any]:
    window = ctx.shadow_window
    return {} if window is None else {"shadow_window": window.to_dict()}


def _too_few(y: np.ndarray, metric: str, min_samples: int, min_per_class: int) -> str | None:
    if len(y) < min_samples:
        return (f"only {len(y)} labelled shadow rows, fewer than the {min_samples} needed to "
                f"judge {metric}; wait for more traffic or lower shadow_accuracy.min_samples")
    if metric in _BINARY_METRICS:
        if not np.all((y == 0) | (y == 1)):
            return None  # not binary labels: let the metric speak for itself
        positives = int(y.sum())
        negatives = len(y) - positives
        if min(positives, negatives) < min_per_class:
            return (f"only {positives} positive and {negatives} negative labelled rows; "
                    f"{min_per_class} of each are needed to judge {metric}")
    return None


def _judge(
    boot: PairedBootstrap, ctx: CheckContext, metric: str, scores: dict[str, np.ndarray]
) -> tuple[list[dict[str, Any]], list[Finding]]:
    config = ctx.config.shadow_accuracy
    level = config.confidence
    comparisons: list[dict[str, Any]] = []
    findings: list[Finding] = []
    pct = f"{level:.0%}"

    def compare(reference: str, margin: float, version: int | None, code: str) -> None:
        diff = boot.improvement(CANDIDATE, reference, metric, level)
        ok = diff.low >= -margin
        label = f"{reference} (v{version})" if version is not None else reference
        comparisons.append(_row(f"candidate vs {label}", diff, -margin, ok,
                                f"difference to {label}"))
        if not ok:
            cand = boot.estimates[(CANDIDATE, metric)]
            ref = boot.estimates[(reference, metric)]
            findings.append(Finding(
                code,
                f"the candidate's {metric} is {cand:.4f} against {ref:.4f} for {label}: the "
                f"improvement {diff.estimate:+.4f} ({pct} CI {diff.low:+.4f} to "
                f"{diff.high:+.4f}) does not clear the non-inferiority margin {-margin:+.4f}; "
                f"keep {label} and find out what the new training changed",
            ))

    if LIVE in scores:
        compare(LIVE, config.margin, ctx.live_version, "shadow_accuracy.inferior")
    elif config.floor is not None:
        own = boot.interval(CANDIDATE, metric, level)
        higher = HIGHER_IS_BETTER[metric]
        worst = own.low if higher else own.high
        ok = worst >= config.floor if higher else worst <= config.floor
        comparisons.append(_row("candidate vs floor", own, config.floor, ok, "against the floor"))
        if not ok:
            findings.append(Finding(
                "shadow_accuracy.below_floor",
                f"there is no live model, and the candidate's {metric} {own.estimate:.4f} "
                f"({pct} CI {own.low:.4f} to {own.high:.4f}) is not shown to be "
                f"{'at least' if higher else 'at most'} the floor {config.floor:g}",
            ))
    else:
        diff = boot.improvement(CANDIDATE, BASELINE, metric, level)
        ok = diff.low > 0
        comparisons.append(_row("candidate vs no-skill", diff, 0.0, ok,
                                "improvement over a no-skill model"))
        if not ok:
            findings.append(Finding(
                "shadow_accuracy.no_skill",
                f"there is no live model, and the candidate is not shown better than a "
                f"constant prediction: {metric} improvement {diff.estimate:+.4f} ({pct} CI "
                f"{diff.low:+.4f} to {diff.high:+.4f})",
            ))
    if ANCHOR in scores:
        compare(ANCHOR, config.anchor_margin, ctx.anchor_version,
                "shadow_accuracy.inferior_to_anchor")
    return comparisons, findings


def _row(label: str, interval: Interval, threshold: float, ok: bool,
         description: str) -> dict[str, Any]:
    return {"label": label, **interval.to_dict(), "threshold": threshold, "ok": ok,
            "description": description}


def _fmt_interval(row: dict[str, Any]) -> str:
    return (f"{row['estimate']:+.4f} ({row['confidence']:.0%} CI {row['low']:+.4f} to "
            f"{row['high']:+.4f}, threshold {row['threshold']:+.4f})")


def _other_metrics(y: np.ndarray, scores: dict[str, np.ndarray], metric: str) -> dict[str, Any]:
    binary = bool(np.all((y == 0) | (y == 1)))
    names = _BINARY_METRICS if binary else _REGRESSION_METRICS
    out: dict[str, Any] = {}
    for model, s in scores.items():
        if model == BASELINE:
            continue
        probability = bool(np.all((s >= 0) & (s <= 1)))
        out[model] = {
            m: metric_value(m, y, s)
            for m in names
            if m != metric and (m not in ("log_loss", "brier") or probability)
        }
    return out
