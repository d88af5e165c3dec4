"""Calibration statistics: expected calibration error over equal-mass bins, the ECE a perfectly
calibrated model would reach on the same predictions by chance, mean prediction vs rate, and
the paired bootstrap of the ECE difference between two models on the same rows."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from parity.sentinel.stats import Interval, normal_ppf, percentile_interval, wilson_interval


@dataclass(frozen=True)
class Calibration:
    """Expected calibration error and what it is compared with.

    ``bins`` lists, per equal-mass bin: rows, mean prediction, observed rate and a Wilson
    interval of the rate. ``ece_noise`` is the ``1 - alpha`` quantile of the ECE a perfectly
    calibrated model would show by chance on these predictions; ``gap_noise`` likewise for
    the absolute gap between mean prediction and observed rate.
    """

    ece: float
    ece_noise: float
    mean_prediction: float
    observed_rate: float
    gap_noise: float
    bins: list[dict[str, float]]

    @property
    def gap(self) -> float:
        """Mean prediction minus observed rate."""
        return self.mean_prediction - self.observed_rate


def calibration(
    y: np.ndarray, p: np.ndarray, *, bins: int = 10, alpha: float = 0.01, seed: int = 0
) -> Calibration:
    """ECE over ``bins`` equal-mass bins of the predictions, with its noise level."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    n = len(y)
    order = np.argsort(p, kind="stable")
    groups = [g for g in np.array_split(order, min(bins, n)) if len(g)]
    weights, gaps, sds, rows = [], [], [], []
    z = normal_ppf(1 - 0.025)
    for g in groups:
        pb, yb = p[g], y[g]
        k = len(g)
        mean_p, rate = float(pb.mean()), float(yb.mean())
        weights.append(k / n)
        gaps.append(abs(mean_p - rate))
        sds.append(math.sqrt(float(np.sum(pb * (1 - pb)))) / k)
        low, high = wilson_interval(rate, k, z)
        rows.append({"rows": k, "mean_prediction": mean_p, "observed_rate": rate,
                     "rate_low": low, "rate_high": high,
                     "min_prediction": float(pb.min()), "max_prediction": float(pb.max())})
    w = np.array(weights)
    ece = float(np.sum(w * np.array(gaps)))
    # Under perfect calibration each bin's rate is approximately normal around its mean
    # prediction with the Poisson-binomial standard deviation; simulate the ECE that gives.
    rng = np.random.default_rng(seed)
    draws = np.abs(rng.standard_normal((4000, len(groups)))) * np.array(sds)
    ece_noise = float(np.quantile(draws @ w, 1 - alpha))
    gap_sd = math.sqrt(float(np.sum(p * (1 - p)))) / n
    return Calibration(
        ece=ece,
        ece_noise=ece_noise,
        mean_prediction=float(p.mean()),
        observed_rate=float(y.mean()),
        gap_noise=normal_ppf(1 - alpha / 2) * gap_sd,
        bins=rows,
    )


def ece_only(y: np.ndarray, p: np.ndarray, bins: int) -> float:
    """The expected calibration error over ``bins`` equal-mass bins (no noise level)."""
    order = np.argsort(p, kind="stable")
    n = len(p)
    k = min(bins, n)
    # The same groups as np.array_split(order, k): the first n % k groups get one extra row.
    sizes = np.full(k, n // k)
    sizes[: n % k] += 1
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    gaps = np.add.reduceat(p[order], starts) - np.add.reduceat(y[order], starts)
    return float(np.sum(np.abs(gaps)) / n)


def ece_difference(y: np.ndarray, p: np.ndarray, reference: np.ndarray, *, bins: int = 10,
                   n_boot: int = 200, seed: int = 0, confidence: float = 0.95) -> Interval:
    """ECE of ``p`` minus ECE of ``reference`` on the same rows, with a paired bootstrap
    interval (each resample recomputes both models' equal-mass bins)."""
    y = np.asarray(y, dtype=np.float64)
    estimate = ece_only(y, p, bins) - ece_only(y, reference, bins)
    rng = np.random.default_rng(seed)
    replicates = np.empty(n_boot)
    for b in range(n_boot):
        i = rng.integers(0, len(y), len(y))
        replicates[b] = ece_only(y[i], p[i], bins) - ece_only(y[i], reference[i], bins)
    return percentile_interval(estimate, replicates, confidence)
