"""Checks run directly on plain inputs (no registry, no child process): edge cases, "not enough
data", sample-size aware thresholds."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from parity.predictor import Predictor
from parity.sentinel import CheckContext, SentinelConfig, Verdict, get_check, run_check
from parity.sentinel.config import ContractConfig, DriftConfig
from parity.sentinel.context import scoring_threads
from parity.sentinel.stats import ratio_of_medians
from tests.sentinel import models, world
from tests.sentinel.helpers import Tables


def ctx_for(tables: Tables, **kwargs: Any) -> CheckContext:
    values: dict[str, Any] = dict(
        model="conv", version=2, now=world.NOW, candidate=tables.good, live=tables.live,
        live_version=1, feature_sets=world.FEATURE_SETS,
        online_types={f.name: f.dtype for f in world.member_features.features},
        shadow=tables.shadow, training=tables.train, sources=["plays", "profiles"],
        freshness={"plays": world.NOW - timedelta(minutes=1),
                   "profiles": world.NOW - timedelta(minutes=1)},
        config=SentinelConfig.from_dict({"shadow_accuracy": {"bootstrap": 200}}),
    )
    values.update(kwargs)
    return CheckContext(**values)


def run(name: str, ctx: CheckContext) -> Any:
    return run_check(get_check(name), ctx)


def test_healthy_inputs_pass_every_in_process_check(tables: Tables) -> None:
    ctx = ctx_for(tables)
    for name in ("contract", "dependent_data", "shadow_accuracy", "drift", "calibration",
                 "latency"):
        assert run(name, ctx).status == "pass", (name, run(name, ctx).reason)
    assert run("artifact", ctx).status == "skipped"  # no artifact file given


def test_small_samples_are_not_enough_data(tables: Tables) -> None:
    ctx = ctx_for(tables, shadow=tables.shadow.slice(0, 200))
    assert run("shadow_accuracy", ctx).status == "not_enough_data"
    assert run("calibration", ctx).status == "not_enough_data"
    assert run("drift", ctx).status == "not_enough_data"
    assert "200 labelled shadow rows" in run("shadow_accuracy", ctx).reason


def test_too_few_of_one_class_is_not_enough_data(tables: Tables) -> None:
    label = tables.shadow.column("label").to_numpy()
    keep = (label == 0) | (np.cumsum(label) <= 10)  # every negative, ten positives
    ctx = ctx_for(tables, shadow=tables.shadow.filter(pa.array(keep)))
    result = run("shadow_accuracy", ctx)
    assert result.status == "not_enough_data"
    assert "only 10 positive" in result.reason


def test_drift_thresholds_follow_sample_size(tables: Tables) -> None:
    """Tiny samples from one distribution never drift; a huge sample with a negligible shift
    is significant but too small a PSI to matter."""
    config = SentinelConfig(drift=DriftConfig(min_samples=50))
    for seed in range(20):
        small = world.rows(60, seed=200 + seed)
        other = world.rows(60, seed=300 + seed)
        result = run("drift", ctx_for(tables, training=small, shadow=other, config=config))
        assert result.status == "pass", result.reason
        limits = [r["psi_limit"] for r in result.evidence["features"]]
        assert min(limits) > 0.2  # above the configured 0.2: noise at n=60 is that large
    big = world.rows(40_000, seed=400)
    shifted = world.rows(40_000, seed=401, minutes_scale=1.04)
    result = run("drift", ctx_for(tables, training=big, shadow=shifted,
                                  config=SentinelConfig(drift=DriftConfig(max_rows=40_000))))
    minutes = next(r for r in result.evidence["features"] if r["feature"] == "minutes_7d")
    assert minutes["pvalue"] < 1e-4 and minutes["psi"] < 0.2
    assert result.status == "pass"


def test_drift_in_categories_and_in_missing_values(tables: Tables) -> None:
    shadow = tables.shadow
    country = np.where(np.arange(shadow.num_rows) % 2 == 0, "IN", shadow.column("country")
                       .to_numpy(zero_copy_only=False))
    age = pa.array([None if i % 3 else v for i, v in
                    enumerate(shadow.column("age").to_pylist())], pa.int64())
    changed = shadow.set_column(shadow.column_names.index("country"), "country",
                                pa.array(country.tolist()))
    changed = changed.set_column(changed.column_names.index("age"), "age", age)
    result = run("drift", ctx_for(tables, shadow=changed))
    drifted = {r["feature"]: r for r in result.evidence["features"] if r["status"] == "drifted"}
    assert set(drifted) == {"country", "age"}
    assert drifted["country"]["test"] == "chi2"
    assert drifted["age"]["missing_live"] == pytest.approx(2 / 3, abs=0.01)


def test_dependent_data_missing_source_and_requirement(tables: Tables) -> None:
    config = SentinelConfig.from_dict({"dependent_data": {"requires": ["labels", "data/x/"]}})
    ctx = ctx_for(tables, config=config, freshness={"plays": world.NOW, "profiles": None},
                  requirements={"data/x/": False})
    result = run("dependent_data", ctx)
    assert result.codes == {"dependent_data.missing", "dependent_data.requirement_missing"}
    assert "'profiles' holds no data" in result.reason


def test_contract_type_mismatch_and_metadata_mismatch(tables: Tables) -> None:
    types = {f.name: f.dtype for f in world.member_features.features} | {"country": "int"}
    ctx = ctx_for(tables, online_types=types,
                  registered_feature_sets={"member_features": "ffffffffffffffff"})
    result = run("contract", ctx)
    assert {"contract.feature_type", "contract.metadata_mismatch"} <= result.codes
    assert "country" in result.reason or any("country" in f.message for f in result.findings)


def test_contract_output_range_for_a_regression(tables: Tables) -> None:
    class Linear:
        def predict(self, X: np.ndarray) -> np.ndarray:
            return X[:, 1] * 10.0  # minutes * 10: up to thousands

    regression = Predictor(Linear(), world.FEATURES, output="raw",
                           categories={"country": world.COUNTRIES},
                           feature_sets=[world.member_features])
    config = SentinelConfig(contract=ContractConfig(output_min=0, output_max=100))
    result = run("contract", ctx_for(tables, candidate=regression, config=config))
    assert result.codes == {"contract.output_range"}
    assert run("calibration", ctx_for(tables, candidate=regression)).status == "skipped"


def test_floor_without_live(tables: Tables) -> None:
    floor = SentinelConfig.from_dict({"shadow_accuracy": {"floor": 0.9, "bootstrap": 200}})
    result = run("shadow_accuracy", ctx_for(tables, live=None, live_version=None, config=floor))
    assert result.codes == {"shadow_accuracy.below_floor"}
    low = replace(floor, shadow_accuracy=replace(floor.shadow_accuracy, floor=0.55))
    assert run("shadow_accuracy", ctx_for(tables, live=None, config=low)).status == "pass"


@pytest.mark.parametrize("metric", ["log_loss", "accuracy", "brier"])
def test_other_metrics(tables: Tables, metric: str) -> None:
    config = SentinelConfig.from_dict({"shadow_accuracy": {"metric": metric, "bootstrap": 200,
                                                           "margin": 0.02}})
    result = run("shadow_accuracy", ctx_for(tables, config=config))
    assert result.status == "pass", result.reason
    assert result.evidence["metric"] == metric


def test_verdict_json_is_strict(tables: Tables) -> None:
    ctx = ctx_for(tables)
    result = run("latency", ctx)
    result.evidence["odd"] = float("nan")
    verdict = Verdict("conv", 2, "pass", [result], world.NOW)
    again = Verdict.from_json(verdict.to_json())
    assert again.results[0].evidence["odd"] is None
    assert again.headline() == verdict.headline()


# --- latency: the model, not the machine ---------------------------------------------------


def _latency_config(**latency: Any) -> SentinelConfig:
    return SentinelConfig.from_dict({"latency": {"requests": 30, "warmup": 0,
                                                 "max_seconds": 1.0, **latency}})


@pytest.fixture
def fake_clock(monkeypatch: pytest.MonkeyPatch) -> models.FakeClock:
    """The latency check reads this clock: timings are exact and independent of load."""
    from parity.sentinel.checks import latency

    clock = models.FakeClock()
    monkeypatch.setattr(latency, "clock", clock)
    return clock


def test_latency_over_budget_once_is_confirmed_by_a_second_run(
    tables: Tables, fake_clock: models.FakeClock
) -> None:
    # Slow for the first run only (as on a machine that was busy for a moment): the second
    # run is within budget, so the check passes and says it ran twice.
    slow_start = world.wrap(
        tables.good, models.SlowAtFirst(tables.good.model, 0.2, calls=8, clock=fake_clock)
    )
    result = run("latency", ctx_for(tables, candidate=slow_start,
                                    config=_latency_config(budget_ms=100)))
    assert result.status == "pass", result.reason
    assert len(result.evidence["runs"]) == 2 and "after a second run" in result.reason
    assert result.evidence["runs"][0]["candidate_figure_ms"] > 100


def test_latency_over_budget_twice_fails_and_slower_than_live_fails(
    tables: Tables, fake_clock: models.FakeClock
) -> None:
    slow = world.wrap(tables.good, models.Slow(tables.good.model, 0.15, clock=fake_clock))
    result = run("latency", ctx_for(tables, candidate=slow, config=_latency_config(budget_ms=50)))
    assert result.status == "fail"
    assert result.codes == {"latency.budget", "latency.ratio"}
    assert len(result.evidence["runs"]) == 2
    assert result.evidence["ratio"]["low"] > 2  # 150 ms against live's well under a ms


def test_latency_without_live_judges_the_budget_only(tables: Tables) -> None:
    result = run("latency", ctx_for(tables, live=None, config=_latency_config(budget_ms=None)))
    assert result.status == "pass" and result.evidence["ratio"] is None
    assert "no live model to time against" in result.reason


def test_ratio_of_medians_is_paired_and_scale_free() -> None:
    rng = np.random.default_rng(0)
    load = rng.lognormal(0, 1.5, 400)  # how busy the machine was at each pair of calls
    same = ratio_of_medians(load * 1.0, load * 1.0)
    assert same.estimate == 1.0 and same.low == 1.0 and same.high == 1.0
    triple = ratio_of_medians(load * 3.0, load)
    assert triple.low == pytest.approx(3.0) and triple.high == pytest.approx(3.0)


def test_scoring_runs_with_one_thread(tables: Tables) -> None:
    threadpoolctl = pytest.importorskip("threadpoolctl")
    seen: list[int] = []

    class Probe(models.Wrapped):
        def probability(self, X: np.ndarray) -> np.ndarray:
            seen.extend(p["num_threads"] for p in threadpoolctl.threadpool_info())
            return self.inner.predict_proba(X)[:, 1]

    with scoring_threads(1):
        world.wrap(tables.good, Probe(tables.good.model)).predict_table(tables.shadow.slice(0, 5))
    assert seen and set(seen) == {1}


# --- reports: timestamps as dates, segments too small to judge --------------------------------


def test_timestamp_features_are_binned_as_dates(tables: Tables) -> None:
    stamps = pa.array([world.NOW - timedelta(days=int(d)) for d in
                       np.random.default_rng(1).integers(0, 400, tables.shadow.num_rows)],
                      pa.timestamp("us", tz="UTC"))
    shadow = tables.shadow.append_column("last_order_at", stamps)
    training = tables.train.append_column("last_order_at", stamps.slice(0, tables.train.num_rows))
    config = replace(SentinelConfig(), drift=DriftConfig(features=("last_order_at",)))
    result = run("drift", ctx_for(tables, shadow=shadow, training=training, config=config))
    labels = result.figures["distributions"][0]["labels"]
    assert any("2023-" in label or "2024-" in label for label in labels), labels
    assert not any("e+" in label for label in labels), labels


def test_segments_too_small_are_listed_not_judged(tables: Tables) -> None:
    config = SentinelConfig.from_dict({"segments": {"min_rows": 10**6}})
    result = run("segments", ctx_for(tables, config=config))
    assert result.status == "not_enough_data"
    assert {r["status"] for r in result.evidence["segments"]} == {"too_small"}


def test_segments_of_a_good_candidate_pass_with_a_worst_first_table(tables: Tables) -> None:
    result = run("segments", ctx_for(tables))
    assert result.status == "pass", result.reason
    rows = [r for r in result.evidence["segments"] if r["status"] == "judged"]
    assert [r["estimate"] for r in rows] == sorted(r["estimate"] for r in rows)
    assert "country" in result.evidence["columns"]
    assert any(r["segment"].startswith("country = ") for r in rows)
    assert any("(top 2%)" in r["segment"] for r in rows)


def test_latency_budget_that_live_misses_too_is_a_warning(tables: Tables) -> None:
    same = world.wrap(tables.live, models.Wrapped(tables.live.model))
    result = run("latency", ctx_for(tables, candidate=same,
                                    config=_latency_config(budget_ms=0.000001)))
    assert result.status == "pass", result.reason
    assert {w.code for w in result.warnings} == {"latency.live_too"}
    assert len(result.evidence["runs"]) == 2
