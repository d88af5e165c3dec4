"""The statistics, checked against SciPy / scikit-learn where they exist and against known
answers elsewhere."""

from __future__ import annotations

import math

import numpy as np
import pytest

from parity.sentinel import calibration_stats, stats


def _data(n: int, seed: int, strength: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(float)
    p = 1 / (1 + np.exp(-(rng.normal(size=n) + strength * y - 1)))
    return y, p


def test_auc_matches_sklearn_with_and_without_ties() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    y, p = _data(5_000, 0)
    assert stats.auc(y, p) == pytest.approx(metrics.roc_auc_score(y, p), abs=1e-12)
    rounded = np.round(p, 1)
    assert stats.auc(y, rounded) == pytest.approx(metrics.roc_auc_score(y, rounded), abs=1e-12)


def test_mean_metrics_match_sklearn() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    y, p = _data(3_000, 1)
    assert stats.metric_value("log_loss", y, p) == pytest.approx(metrics.log_loss(y, p))
    assert stats.metric_value("brier", y, p) == pytest.approx(metrics.brier_score_loss(y, p))
    assert stats.metric_value("accuracy", y, p) == pytest.approx(
        metrics.accuracy_score(y, p >= 0.5))


def test_paired_bootstrap_interval_detects_a_real_difference_and_not_a_null_one() -> None:
    y, p = _data(20_000, 2)
    rng = np.random.default_rng(3)
    noisy = 1 / (1 + np.exp(-(np.log(p / (1 - p)) + rng.normal(0, 1.0, len(p)))))
    boot = stats.PairedBootstrap(y, {"a": p, "b": noisy, "same": p.copy()}, ["auc", "log_loss"],
                                 n_boot=300, seed=0)
    worse = boot.improvement("b", "a", "auc")
    assert worse.high < 0 < -worse.low  # clearly worse, interval excludes 0
    same = boot.improvement("same", "a", "auc")
    assert same.estimate == 0 and same.low == 0 and same.high == 0  # paired: identical models
    loss = boot.improvement("b", "a", "log_loss")
    assert loss.high < 0  # higher-is-better orientation for losses too


def test_paired_bootstrap_is_narrower_than_unpaired() -> None:
    """Pairing removes the shared row difficulty: the interval of the difference is tighter
    than one built from each model's own interval."""
    y, p = _data(10_000, 4)
    q = np.clip(p + np.random.default_rng(5).normal(0, 0.01, len(p)), 1e-6, 1 - 1e-6)
    boot = stats.PairedBootstrap(y, {"p": p, "q": q}, ["auc"], n_boot=300, seed=1)
    paired = boot.improvement("q", "p", "auc")
    own = boot.interval("p", "auc")
    assert paired.high - paired.low < (own.high - own.low) / 3


def test_bootstrap_coverage_of_a_known_auc() -> None:
    """Over repeated samples from a population with a known AUC, the 90% interval covers it
    about 90% of the time (fixed seeds: deterministic)."""
    # Scores N(0,1) for negatives, N(d,1) for positives: AUC = Phi(d / sqrt(2)).
    d = 0.8
    truth = 0.5 * (1 + math.erf(d / 2))
    covered = 0
    for seed in range(40):
        rng = np.random.default_rng(100 + seed)
        y = (rng.random(2_000) < 0.4).astype(float)
        s = rng.normal(size=2_000) + d * y
        boot = stats.PairedBootstrap(y, {"m": s}, ["auc"], n_boot=200, seed=seed)
        interval = boot.interval("m", "auc", confidence=0.9)
        covered += interval.low <= truth <= interval.high
    assert 30 <= covered <= 40


def test_chi2_and_ks_match_scipy() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    for x, df in [(0.5, 1), (3.0, 1), (10.0, 5), (50.0, 30), (200.0, 150), (1e-3, 4)]:
        assert stats.chi2_sf(x, df) == pytest.approx(scipy_stats.chi2.sf(x, df), rel=1e-9)
    for q, df in [(0.99, 9), (0.95, 1), (0.999, 49)]:
        assert stats.chi2_ppf(q, df) == pytest.approx(scipy_stats.chi2.ppf(q, df), rel=1e-8)
    rng = np.random.default_rng(6)
    a, b = rng.normal(size=3_000), rng.normal(0.1, 1, size=2_000)
    ours = stats.ks_2samp(a, b)
    theirs = scipy_stats.ks_2samp(a, b, method="asymp")
    assert ours.statistic == pytest.approx(theirs.statistic)
    # Ours adds Stephens' finite-sample correction to the same asymptotic distribution.
    assert ours.pvalue == pytest.approx(theirs.pvalue, rel=0.05)
    table = np.array([[120, 80, 40], [100, 110, 30]])
    chi = stats.chi2_contingency(table[0], table[1])
    expected = scipy_stats.chi2_contingency(table, correction=False)
    assert chi.statistic == pytest.approx(expected.statistic)
    assert chi.pvalue == pytest.approx(expected.pvalue)


def test_psi_noise_threshold_tracks_sampling_noise() -> None:
    """Same-distribution samples exceed the threshold about alpha of the time, and the
    threshold falls as samples grow."""
    rng = np.random.default_rng(7)
    exceed = 0
    for _ in range(300):
        a, b = rng.normal(size=400), rng.normal(size=300)
        edges = stats.quantile_edges(a, 10)
        value = stats.psi(stats.binned_counts(a, edges), stats.binned_counts(b, edges))
        exceed += value > stats.psi_noise_threshold(400, 300, 10, 0.05)
    assert exceed <= 0.1 * 300
    assert stats.psi_noise_threshold(100, 100, 10, 0.01) > 0.2
    assert stats.psi_noise_threshold(100_000, 100_000, 10, 0.01) < 0.001


def test_psi_of_a_shift() -> None:
    rng = np.random.default_rng(8)
    a, b = rng.normal(size=20_000), rng.normal(1.0, 1, size=20_000)
    edges = stats.quantile_edges(a, 10)
    assert stats.psi(stats.binned_counts(a, edges), stats.binned_counts(b, edges)) > 0.5


def test_calibration_of_calibrated_and_overconfident_predictions() -> None:
    rng = np.random.default_rng(9)
    p = rng.uniform(0.05, 0.95, 20_000)
    y = (rng.random(20_000) < p).astype(float)
    good = calibration_stats.calibration(y, p, bins=10)
    assert good.ece < good.ece_noise * 1.5 and good.ece < 0.02
    assert len(good.bins) == 10 and {b["rows"] for b in good.bins} == {2_000}
    logit = np.log(p / (1 - p))
    bad = calibration_stats.calibration(y, 1 / (1 + np.exp(-3 * logit)), bins=10)
    assert bad.ece > 0.1 > bad.ece_noise


def test_wilson_interval_contains_the_rate() -> None:
    low, high = stats.wilson_interval(0.3, 100, 1.96)
    assert 0.21 < low < 0.3 < high < 0.4
