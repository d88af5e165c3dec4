"""Calibration: do the candidate's probabilities mean what they say, compared with live's?

Expected calibration error over equal-mass bins (each bin holds the same number of rows, so
no bin is estimated from a handful of rows), a reliability diagram, and mean prediction
against observed rate. Each is compared with its limit *and* with what a perfectly calibrated
model would show on as many rows by chance, so a small sample does not fail on noise, and
with the live model's ECE on the same rows (a paired bootstrap interval of the difference), so
a candidate is not stopped for miscalibration that live has too (a warning says so instead).
A constant model at the base rate is calibrated (ECE near 0) but has no resolution: the shadow
accuracy check stops it (AUC 0.5 against live's). Applies to binary classifiers whose output
is a probability; skipped otherwise.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from parity.sentinel.calibration_stats import Calibration, calibration, ece_difference
from parity.sentinel.checks import candidate_missing
from parity.sentinel.context import CANDIDATE, LIVE, CheckContext
from parity.sentinel.verdict import CheckResult, Finding


class CalibrationCheck:
    """ECE (equal-mass bins) and mean prediction vs observed rate, noise-aware."""

    name = "calibration"
    needs_candidate = True

    def run(self, ctx: CheckContext) -> CheckResult:
        """Judge the candidate's calibration; report the live model's beside it."""
        skipped = candidate_missing(self.name, ctx)
        if skipped is not None:
            return skipped
        config = ctx.config.calibration
        if getattr(ctx.candidate, "output", "probability") != "probability":
            return CheckResult.skipped(
                self.name, f"the model outputs {ctx.candidate.output!r}, not a probability")
        if ctx.shadow is None or ctx.shadow.num_rows == 0:
            return CheckResult.not_enough_data(self.name, ctx.no_shadow_reason())
        if ctx.missing_features(CANDIDATE):
            return CheckResult.skipped(
                self.name, "the shadow rows lack features the candidate reads (see contract)")
        try:
            y_all, p_all = ctx.labels(), ctx.scores(CANDIDATE)
        except TypeError as err:
            return CheckResult.skipped(self.name, str(err))
        except (LookupError, RuntimeError) as err:
            return CheckResult.not_enough_data(self.name, str(err))
        keep = np.isfinite(y_all) & np.isfinite(p_all)
        y, p = y_all[keep], p_all[keep]
        if not np.all((y == 0) | (y == 1)):
            return CheckResult.skipped(self.name, "the labels are not binary (0/1)")
        if len(p) and (p.min() < 0 or p.max() > 1):
            return CheckResult.skipped(
                self.name, "the outputs are not probabilities in [0, 1] (see contract)")
        if len(y) < config.min_samples:
            return CheckResult.not_enough_data(
                self.name, f"only {len(y)} labelled rows, fewer than the {config.min_samples} "
                f"needed for a {config.bins}-bin calibration estimate")
        cand = calibration(y, p, bins=config.bins, alpha=config.alpha, seed=ctx.config.seed)
        evidence: dict[str, Any] = {"rows": len(y), "bins": config.bins,
                                    "candidate": _summary(cand)}
        figures: dict[str, Any] = {"reliability": {"candidate": cand.bins}}
        live_p = _live_scores(ctx, keep)
        live = None if live_p is None else calibration(
            y, live_p, bins=config.bins, alpha=config.alpha, seed=ctx.config.seed)
        diff = None
        allowed = config.max_ece_increase
        if live is not None and live_p is not None:
            allowed = max(config.max_ece_increase, config.relative_increase * live.ece)
            evidence["live"] = _summary(live)
            figures["reliability"]["live"] = live.bins
            diff = ece_difference(y, p, live_p, bins=config.bins, n_boot=config.bootstrap,
                                  seed=ctx.config.seed, confidence=config.confidence)
            evidence["ece_difference"] = diff.to_dict()
            evidence["allowed_increase"] = allowed
        ece_limit = max(config.max_ece, cand.ece_noise)
        gap_limit = max(config.max_mean_gap, cand.gap_noise)
        evidence.update(ece_limit=ece_limit, mean_gap_limit=gap_limit)
        versus = "" if diff is None else (
            f"; {diff.estimate:+.4f} against live v{ctx.live_version}'s {live.ece:.4f} "  # type: ignore[union-attr]
            f"({diff.confidence:.0%} CI {diff.low:+.4f} to {diff.high:+.4f}, allowed "
            f"+{allowed:.4f})")
        worse_than_live = diff is not None and diff.low > allowed
        findings, warnings = [], []
        over = cand.ece > ece_limit
        text = (f"expected calibration error {cand.ece:.4f} (limit {ece_limit:.4f}: "
                f"{config.max_ece:g}, or what chance alone reaches on {len(y)} rows, "
                f"{cand.ece_noise:.4f}){versus}")
        fix = "; recalibrate the model (Platt or isotonic on recent data) before it serves"
        if worse_than_live:
            findings.append(Finding("calibration.ece", "the candidate is shown less calibrated "
                                    "than live: " + text + fix))
        elif over and diff is None:
            findings.append(Finding("calibration.ece", text + fix))
        elif over:
            warnings.append(Finding("calibration.live_too", text + "; live is no better "
                                    "calibrated on the same rows, so this does not stop the "
                                    "candidate: recalibrate both"))
        live_gap_ok = live is None or abs(cand.gap) > abs(live.gap) + max(
            cand.gap_noise, config.relative_increase * abs(live.gap))
        if abs(cand.gap) > gap_limit:
            text = (f"mean prediction {cand.mean_prediction:.4f} against an observed rate of "
                    f"{cand.observed_rate:.4f}: off by {cand.gap:+.4f}, more than "
                    f"{gap_limit:.4f}" + ("" if live is None else
                                          f" (live is off by {live.gap:+.4f})"))
            (findings if live_gap_ok else warnings).append(
                Finding("calibration.mean_gap" if live_gap_ok else "calibration.live_gap_too",
                        text))
        if findings:
            return CheckResult.failed(self.name, findings, evidence=evidence, figures=figures,
                                      warnings=warnings)
        return CheckResult.passed(
            self.name,
            f"ECE {cand.ece:.4f} (limit {ece_limit:.4f}){versus}; mean prediction "
            f"{cand.mean_prediction:.4f} vs observed rate {cand.observed_rate:.4f}",
            evidence=evidence, figures=figures, warnings=warnings,
        )


def _live_scores(ctx: CheckContext, keep: np.ndarray) -> np.ndarray | None:
    if (ctx.live is None or getattr(ctx.live, "output", None) != "probability"
            or ctx.missing_features(LIVE)):
        return None
    try:
        p = ctx.scores(LIVE)[keep]
    except (TypeError, RuntimeError, LookupError):
        return None
    if not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1:
        return None
    return p


def _summary(c: Calibration) -> dict[str, float]:
    return {"ece": c.ece, "ece_noise": c.ece_noise, "mean_prediction": c.mean_prediction,
            "observed_rate": c.observed_rate, "gap": c.gap, "gap_noise": c.gap_noise}
