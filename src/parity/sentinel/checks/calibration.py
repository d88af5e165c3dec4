"""Calibration: do the candidate's probabilities mean what they say on recent traffic?

Expected calibration error over equal-mass bins (each bin holds the same number of rows, so
no bin is estimated from a handful of rows), a reliability diagram, and mean prediction
against observed rate. Each is compared with its limit *and* with what a perfectly calibrated
model would show on as many rows by chance, so a small sample does not fail on noise.
Applies to binary classifiers whose output is a probability; skipped otherwise.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from parity.sentinel.checks import candidate_missing
from parity.sentinel.context import CANDIDATE, LIVE, CheckContext
from parity.sentinel.stats import Calibration, calibration
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
            return CheckResult.not_enough_data(self.name, "no labelled shadow rows")
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
        live = _live(ctx, keep, y, config)
        if live is not None:
            evidence["live"] = _summary(live)
            figures["reliability"]["live"] = live.bins
        ece_limit = max(config.max_ece, cand.ece_noise)
        gap_limit = max(config.max_mean_gap, cand.gap_noise)
        evidence.update(ece_limit=ece_limit, mean_gap_limit=gap_limit)
        findings = []
        if cand.ece > ece_limit:
            findings.append(Finding(
                "calibration.ece",
                f"expected calibration error {cand.ece:.4f} exceeds {ece_limit:.4f} (limit "
                f"{config.max_ece:g}; chance alone reaches {cand.ece_noise:.4f} on {len(y)} "
                f"rows){_live_note(live)}; recalibrate the model (Platt or isotonic on recent "
                f"data) before it serves",
            ))
        if abs(cand.gap) > gap_limit:
            findings.append(Finding(
                "calibration.mean_gap",
                f"mean prediction {cand.mean_prediction:.4f} against an observed rate of "
                f"{cand.observed_rate:.4f}: off by {cand.gap:+.4f}, more than {gap_limit:.4f}",
            ))
        if findings:
            return CheckResult.failed(self.name, findings, evidence=evidence, figures=figures)
        return CheckResult.passed(
            self.name,
            f"ECE {cand.ece:.4f} within {ece_limit:.4f}; mean prediction "
            f"{cand.mean_prediction:.4f} vs observed rate {cand.observed_rate:.4f}",
            evidence=evidence, figures=figures,
        )


def _live(ctx: CheckContext, keep: np.ndarray, y: np.ndarray, config: Any) -> Calibration | None:
    if (ctx.live is None or getattr(ctx.live, "output", None) != "probability"
            or ctx.missing_features(LIVE)):
        return None
    try:
        p = ctx.scores(LIVE)[keep]
    except (TypeError, RuntimeError, LookupError):
        return None
    if not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1:
        return None
    return calibration(y, p, bins=config.bins, alpha=config.alpha, seed=ctx.config.seed)


def _summary(c: Calibration) -> dict[str, float]:
    return {"ece": c.ece, "ece_noise": c.ece_noise, "mean_prediction": c.mean_prediction,
            "observed_rate": c.observed_rate, "gap": c.gap, "gap_noise": c.gap_noise}


def _live_note(live: Calibration | None) -> str:
    return "" if live is None else f"; the live model's ECE is {live.ece:.4f}"
