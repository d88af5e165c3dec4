"""The statistics behind the sentinel's checks, in numpy only (no SciPy at run time).

- ``PairedBootstrap``: one set of bootstrap resamples of the rows, shared by every model, so
  that differences between models are paired (a hard row is hard for both). Metrics: AUC
  (exact weighted Mann-Whitney on each resample), log loss, Brier score, accuracy, MSE, MAE.
- ``psi`` with quantile bins taken from the reference (training) sample, and the PSI that
  sampling noise alone reaches, ``psi_noise_threshold``: under "same distribution",
  ``PSI ~ (1/n + 1/m) * chi2(bins - 1)`` approximately, so small samples get a higher bar.
- ``ks_2samp`` (two-sample Kolmogorov-Smirnov with the asymptotic p-value) and
  ``chi2_contingency`` for categories, with ``chi2_sf`` / ``chi2_ppf`` implemented here.
- ``ratio_of_medians`` (latency), ``wilson_interval``; calibration statistics live in
  ``calibration_stats``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from parity.errors import ConfigError

HIGHER_IS_BETTER = {"auc": True, "accuracy": True, "log_loss": False, "brier": False,
                    "mse": False, "mae": False}
_EPS = 1e-15
_BLOCKS = 8  # bootstrap replicates are drawn in this many independently seeded blocks


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided ``confidence`` interval [low, high]."""

    estimate: float
    low: float
    high: float
    confidence: float

    def to_dict(self) -> dict[str, float]:
        """A JSON-ready dict."""
        return {"estimate": self.estimate, "low": self.low, "high": self.high,
                "confidence": self.confidence}


# --- metrics -------------------------------------------------------------------------------


def row_losses(metric: str, y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Per-row values whose mean is ``metric`` (every metric except AUC)."""
    if metric == "log_loss":
        q = np.clip(p, _EPS, 1 - _EPS)
        return -(y * np.log(q) + (1 - y) * np.log1p(-q))
    if metric in ("brier", "mse"):
        return (p - y) ** 2
    if metric == "mae":
        return np.abs(p - y)
    if metric == "accuracy":
        is_probability = bool(np.all((p >= 0) & (p <= 1))) and not np.array_equal(p, np.round(p))
        predicted = (p >= 0.5) if is_probability else np.round(p)
        return (predicted == y).astype(np.float64)
    raise ConfigError(
        f"metric {metric!r} has no per-row form; use log_loss, brier, mse, mae or accuracy"
    )


def auc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve (ties count one half); NaN without both classes."""
    return _AucPlan(y.astype(bool), p).weighted(np.ones(len(y), dtype=np.int64))


def metric_value(metric: str, y: np.ndarray, p: np.ndarray) -> float:
    """``metric`` of predictions ``p`` against labels ``y``."""
    if metric == "auc":
        return auc(y, p)
    return float(np.mean(row_losses(metric, y, p)))


def no_skill_predictions(metric: str, y: np.ndarray) -> np.ndarray:
    """The predictions of a model that knows only the label distribution (a constant)."""
    if metric == "accuracy":
        return np.full(len(y), float(np.mean(y) >= 0.5))
    if metric == "mae":
        return np.full(len(y), float(np.median(y)))
    return np.full(len(y), float(np.mean(y)))


class _AucPlan:
    """Precomputed order for the weighted AUC of one model on fixed rows.

    Negatives are sorted by score once; for each positive, ``lo``/``hi`` count the negatives
    scored strictly below / at most its score. Then for weights ``w`` (bootstrap counts) the
    AUC is ``sum_pos w_i (C[lo_i] + C[hi_i]) / 2 / (W_pos W_neg)`` with ``C`` the cumulative
    weight of the sorted negatives: O(n) per resample after one O(n log n) sort.
    """

    def __init__(self, y: np.ndarray, p: np.ndarray) -> None:
        self.pos = np.flatnonzero(y)
        neg = np.flatnonzero(~y)
        self.neg = neg[np.argsort(p[neg], kind="stable")]
        sorted_neg = p[self.neg]
        self.lo = np.searchsorted(sorted_neg, p[self.pos], "left")
        self.hi = np.searchsorted(sorted_neg, p[self.pos], "right")
        self.ties = not np.array_equal(self.lo, self.hi)

    def weighted(self, w: np.ndarray) -> float:
        wn = w[self.neg]
        wp = w[self.pos]
        total_neg = int(wn.sum())
        total_pos = int(wp.sum())
        if total_neg == 0 or total_pos == 0:
            return math.nan
        cum = np.zeros(len(wn) + 1, dtype=np.int64)  # per call: blocks run in threads
        np.cumsum(wn, out=cum[1:])
        below = cum[self.lo]
        if self.ties:
            twice = below + cum[self.hi]
            numerator = float(wp @ twice) / 2.0
        else:
            numerator = float(wp @ below)
        return numerator / (total_pos * total_neg)


class PairedBootstrap:
    """Bootstrap replicates of several metrics of several models on the same resamples.

    ``scores`` maps a model label (``"candidate"``, ``"live"``...) to its predictions on the
    rows whose labels are ``y``. Every replicate draws ``n`` row indices with replacement
    (seeded), and every model and metric is evaluated on that same draw.
    """

    def __init__(
        self,
        y: np.ndarray,
        scores: Mapping[str, np.ndarray],
        metrics: Sequence[str],
        *,
        n_boot: int = 1000,
        seed: int = 0,
    ) -> None:
        self.y = np.asarray(y, dtype=np.float64)
        self.n = len(self.y)
        self.metrics = list(metrics)
        self.n_boot = n_boot
        self.scores = {k: np.asarray(v, dtype=np.float64) for k, v in scores.items()}
        self.estimates: dict[tuple[str, str], float] = {}
        self.replicates: dict[tuple[str, str], np.ndarray] = {}
        self._run(seed)

    def _run(self, seed: int) -> None:
        labels = self.y.astype(bool)
        plans = {k: _AucPlan(labels, s) for k, s in self.scores.items()} if (
            "auc" in self.metrics) else {}
        mean_metrics = [m for m in self.metrics if m != "auc"]
        columns = []
        keys: list[tuple[str, str]] = []
        for model, s in self.scores.items():
            for metric in self.metrics:
                self.estimates[(model, metric)] = metric_value(metric, self.y, s)
            for metric in mean_metrics:
                columns.append(row_losses(metric, self.y, s))
                keys.append((model, metric))
        losses = np.column_stack(columns) if columns else np.empty((self.n, 0))
        out = {key: np.empty(self.n_boot) for key in [*keys, *((m, "auc") for m in plans)]}
        # Fixed blocks with their own seeded generators: the same replicates whatever the
        # number of threads, so results do not depend on the machine.
        blocks = np.array_split(np.arange(self.n_boot), _BLOCKS)
        seeds = np.random.SeedSequence(seed).spawn(_BLOCKS)

        def run_block(index: int) -> None:
            rng = np.random.default_rng(seeds[index])
            for b in blocks[index]:
                w = np.bincount(rng.integers(0, self.n, self.n), minlength=self.n)
                if keys:
                    means = (w @ losses) / self.n
                    for j, key in enumerate(keys):
                        out[key][b] = means[j]
                for model, plan in plans.items():
                    out[(model, "auc")][b] = plan.weighted(w)

        workers = min(_BLOCKS, os.cpu_count() or 1)
        if workers > 1 and self.n * self.n_boot > 2_000_000:
            with ThreadPoolExecutor(workers) as pool:  # numpy releases the GIL in the heavy parts
                list(pool.map(run_block, range(_BLOCKS)))
        else:
            for index in range(_BLOCKS):
                run_block(index)
        self.replicates = out

    def interval(self, model: str, metric: str, confidence: float = 0.95) -> Interval:
        """The percentile interval of one model's metric."""
        return percentile_interval(
            self.estimates[(model, metric)], self.replicates[(model, metric)], confidence
        )

    def improvement(
        self, model: str, reference: str, metric: str, confidence: float = 0.95
    ) -> Interval:
        """How much better ``model`` is than ``reference`` (higher is better for every metric):
        ``model - reference`` for AUC and accuracy, ``reference - model`` for losses."""
        sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
        estimate = sign * (self.estimates[(model, metric)] - self.estimates[(reference, metric)])
        diffs = sign * (self.replicates[(model, metric)] - self.replicates[(reference, metric)])
        return percentile_interval(estimate, diffs, confidence)


def percentile_interval(estimate: float, replicates: np.ndarray, confidence: float) -> Interval:
    """The percentile bootstrap interval of ``replicates`` around ``estimate`` (NaNs dropped)."""
    tail = (1 - confidence) / 2 * 100
    finite = replicates[np.isfinite(replicates)]
    if len(finite) == 0:
        return Interval(estimate, math.nan, math.nan, confidence)
    low, high = np.percentile(finite, [tail, 100 - tail])
    return Interval(float(estimate), float(low), float(high), confidence)


# --- distributions -------------------------------------------------------------------------


def quantile_edges(reference: np.ndarray, bins: int) -> np.ndarray:
    """Interior bin edges at the reference's quantiles 1/bins ... (bins-1)/bins, deduplicated.

    Values ``x`` go to bin ``searchsorted(edges, x, side="right")``; a feature with few
    distinct values gets fewer bins.
    """
    finite = reference[np.isfinite(reference)]
    if len(finite) == 0:
        return np.empty(0)
    qs = np.linspace(0, 1, bins + 1)[1:-1]
    return np.unique(np.quantile(finite, qs, method="linear"))


def binned_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts per bin (``len(edges) + 1`` bins) followed by one count of missing values."""
    missing = ~np.isfinite(values)
    finite = values[~missing]
    counts = np.bincount(np.searchsorted(edges, finite, side="right"), minlength=len(edges) + 1)
    return np.append(counts, int(missing.sum()))


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index between two count vectors over the same bins.

    Bins empty in both are ignored; half a count is added to every other bin so that a bin
    empty on one side gives a large but finite term.
    """
    keep = (expected + actual) > 0
    e = expected[keep] + 0.5
    a = actual[keep] + 0.5
    e = e / e.sum()
    a = a / a.sum()
    return float(np.sum((a - e) * np.log(a / e)))


def psi_noise_threshold(n: int, m: int, bins: int, alpha: float) -> float:
    """The PSI two samples of sizes ``n`` and ``m`` from one distribution exceed with
    probability ``alpha`` (chi-squared approximation)."""
    if n == 0 or m == 0 or bins < 2:
        return math.inf
    return (1 / n + 1 / m) * chi2_ppf(1 - alpha, bins - 1)


@dataclass(frozen=True)
class TestResult:
    """A test statistic and its p-value."""

    statistic: float
    pvalue: float


def ks_2samp(a: np.ndarray, b: np.ndarray) -> TestResult:
    """Two-sample Kolmogorov-Smirnov test (asymptotic p-value; NaNs dropped)."""
    a = np.sort(a[np.isfinite(a)])
    b = np.sort(b[np.isfinite(b)])
    n, m = len(a), len(b)
    if n == 0 or m == 0:
        return TestResult(math.nan, math.nan)
    grid = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, grid, side="right") / n
    cdf_b = np.searchsorted(b, grid, side="right") / m
    d = float(np.max(np.abs(cdf_a - cdf_b)))
    effective = math.sqrt(n * m / (n + m))
    return TestResult(d, kolmogorov_sf((effective + 0.12 + 0.11 / effective) * d))


def kolmogorov_sf(x: float) -> float:
    """P(K > x) for the Kolmogorov distribution."""
    if x <= 0:
        return 1.0
    if x < 0.2:  # the series converges slowly here; the answer is 1 to double precision
        return 1.0
    total = 0.0
    for k in range(1, 101):
        term = 2 * (-1) ** (k - 1) * math.exp(-2 * k * k * x * x)
        total += term
        if abs(term) < 1e-16:
            break
    return float(min(max(total, 0.0), 1.0))


def chi2_contingency(expected: np.ndarray, actual: np.ndarray) -> TestResult:
    """Chi-squared test that two count vectors over the same categories share a distribution.

    Categories whose pooled expected count is below 5 are merged into one, the usual rule
    for the chi-squared approximation to hold.
    """
    expected = np.asarray(expected, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    n, m = expected.sum(), actual.sum()
    if n == 0 or m == 0:
        return TestResult(math.nan, math.nan)
    pooled = (expected + actual) / (n + m)
    small = pooled * min(n, m) < 5
    if small.any():
        expected = np.append(expected[~small], expected[small].sum())
        actual = np.append(actual[~small], actual[small].sum())
        pooled = (expected + actual) / (n + m)
    keep = pooled > 0
    expected, actual, pooled = expected[keep], actual[keep], pooled[keep]
    if len(pooled) < 2:
        return TestResult(0.0, 1.0)
    stat = float(np.sum((expected - n * pooled) ** 2 / (n * pooled))
                 + np.sum((actual - m * pooled) ** 2 / (m * pooled)))
    return TestResult(stat, chi2_sf(stat, len(pooled) - 1))


def chi2_sf(x: float, df: int) -> float:
    """P(X > x) for X chi-squared with ``df`` degrees of freedom."""
    if x <= 0:
        return 1.0
    return _gammaincc(df / 2.0, x / 2.0)


def chi2_ppf(q: float, df: int) -> float:
    """The ``q`` quantile of the chi-squared distribution with ``df`` degrees of freedom."""
    if not 0 < q < 1:
        raise ConfigError(f"quantile level q must lie in (0, 1), got {q}; pass e.g. 0.95")
    low, high = 0.0, max(1.0, df + 10 * math.sqrt(2 * df) + 50)
    while chi2_sf(high, df) > 1 - q:
        high *= 2
    for _ in range(200):
        mid = (low + high) / 2
        if chi2_sf(mid, df) > 1 - q:
            low = mid
        else:
            high = mid
        if high - low < 1e-12 * max(1.0, high):
            break
    return (low + high) / 2


def _gammaincc(a: float, x: float) -> float:
    """The regularized upper incomplete gamma function Q(a, x) (Numerical Recipes 6.2)."""
    log_prefactor = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1:  # series for P(a, x)
        term = total = 1.0 / a
        ap = a
        for _ in range(10_000):
            ap += 1
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return float(min(max(1.0 - total * math.exp(log_prefactor), 0.0), 1.0))
    tiny = 1e-300  # continued fraction for Q(a, x), modified Lentz
    b = x + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return float(min(max(math.exp(log_prefactor) * h, 0.0), 1.0))


def normal_ppf(q: float) -> float:
    """The ``q`` quantile of the standard normal distribution."""
    return NormalDist().inv_cdf(q)


def wilson_interval(rate: float, n: int, z: float) -> tuple[float, float]:
    """The Wilson score interval of a proportion."""
    if n == 0:
        return (math.nan, math.nan)
    denom = 1 + z * z / n
    centre = (rate + z * z / (2 * n)) / denom
    half = z * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def ratio_of_medians(a: np.ndarray, b: np.ndarray, *, n_boot: int = 1000, seed: int = 0,
                     confidence: float = 0.95) -> Interval:
    """``median(a) / median(b)`` with a paired bootstrap interval (``a[i]``, ``b[i]`` were
    measured together, so a resample keeps pairs: a slow moment slows both)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    estimate = float(np.median(a) / np.median(b))
    rng = np.random.default_rng(seed)
    index = rng.integers(0, len(a), (n_boot, len(a)))
    replicates = np.median(a[index], axis=1) / np.median(b[index], axis=1)
    return percentile_interval(estimate, replicates, confidence)


def percentiles(values: np.ndarray, qs: Sequence[float]) -> dict[str, Any]:
    """Named percentiles, e.g. ``{"p50": ..., "p99": ...}``."""
    out = np.percentile(values, list(qs))
    return {f"p{q:g}": float(v) for q, v in zip(qs, out)}
