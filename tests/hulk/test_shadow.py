"""After the swap: the shadow period compares sampled lookups with the previous version."""

from __future__ import annotations

import pytest

from parity.errors import ConfigError
from parity.hulk import Publications, ShadowPolicy, ValidationPolicy
from parity.hulk.ratelimit import RateLimiter
from parity.hulk.shadow import ShadowMonitor, disagrees
from parity.hulk.stores import PublicationStore
from tests.hulk.helpers import Recorder, scores

LENIENT = ValidationPolicy(psi=100.0, max_keys_lost=1.0)
EAGER = ShadowPolicy(sample_rate=1.0, min_samples=30, period_samples=200, seed=0)


def test_a_version_that_disagrees_rolls_itself_back_and_alerts(store: PublicationStore) -> None:
    recorder = Recorder()
    pubs = Publications(store, policy=LENIENT, shadow=EAGER, alerts=recorder.alerter())
    pubs.publish("s", scores(100), key_columns=["customer_id"])
    bad = pubs.publish("s", scores(100, scale=-5.0), key_columns=["customer_id"])
    assert bad.live  # validation was told to let it through: the shadow must catch it
    seen = {r.version for r in pubs.lookup_many("s", list(range(100)))}
    assert seen == {2}  # this call was answered by v2, and showed it disagrees
    assert store.live_version("s") == 1
    assert pubs.lookup("s", 5).version == 1
    assert pubs.manifest("s", 2).status == "rolled_back"
    assert "publication_shadow.disagreement" in recorder.codes()
    state = pubs.reader.shadow_state("s")
    assert state is not None and state["state"] == "rolled_back"


def test_a_version_that_agrees_is_confirmed_and_stays(store: PublicationStore) -> None:
    recorder = Recorder()
    pubs = Publications(store, policy=LENIENT, shadow=EAGER, alerts=recorder.alerter())
    pubs.publish("s", scores(100), key_columns=["customer_id"])
    pubs.publish("s", scores(100, scale=1.05), key_columns=["customer_id"])
    for _ in range(3):
        pubs.lookup_many("s", list(range(100)))
    assert store.live_version("s") == 2
    state = pubs.reader.shadow_state("s")
    assert state is not None and state["state"] == "confirmed" and state["disagreements"] == 0
    assert recorder.events == []


def test_a_few_unlucky_samples_do_not_roll_back() -> None:
    monitor = ShadowMonitor("s", 2, 1, ShadowPolicy(min_samples=10, max_disagreement=0.2))
    assert monitor.record(10, 3) is None  # 30% observed, but the lower bound is below 20%
    assert monitor.state == "watching"
    assert monitor.record(190, 57) == "rolled_back"  # 30% of 200: clearly above 20%


def test_disagreement_by_kind() -> None:
    policy = ShadowPolicy()
    assert not disagrees(0.50, 0.52, policy)
    assert disagrees(None, 0.5, policy)
    assert disagrees(2.0, 0.5, policy)
    assert disagrees("b", "a", policy)
    assert not disagrees([{"item": "a", "score": 1}, {"item": "b", "score": 0.5}],
                         [{"item": "b", "score": 1}, {"item": "a", "score": 0.2}], policy)
    assert disagrees([{"item": "x", "score": 1}], [{"item": "a", "score": 1}], policy)
    assert not disagrees([1.0, 0.0], [1.0, 0.01], policy)
    assert disagrees([1.0, 0.0], [1.0], policy)


def test_policies_reject_out_of_range_values() -> None:
    with pytest.raises(ConfigError, match="sample_rate"):
        ShadowPolicy(sample_rate=2.0)
    with pytest.raises(ConfigError, match="max_keys_lost"):
        ValidationPolicy(max_keys_lost=5)
    with pytest.raises(ConfigError, match="rows_per_second"):
        RateLimiter(0)


def test_rate_limiter_paces_bulk_writes() -> None:
    clock = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    limiter = RateLimiter(1000, burst=100, clock=lambda: clock[0], sleep=sleep)
    for _ in range(10):
        limiter.acquire(100)
    assert clock[0] == pytest.approx(0.9)  # 1,000 rows at 1,000/s after a burst of 100
    assert limiter.waited == pytest.approx(0.9)
    unlimited = RateLimiter(None, clock=lambda: 0.0, sleep=sleep)
    before = len(slept)
    unlimited.acquire(10**9)
    assert len(slept) == before


def test_publisher_honours_the_rate_limit(store: PublicationStore) -> None:
    pubs = Publications(store, rows_per_second=20_000, write_batch=500)
    report = pubs.publish("s", scores(3000), key_columns=["customer_id"])
    # 3,000 rows at 20,000/s after a 500-row burst cannot take less than 2,500 / 20,000 s
    # (a lower bound only: a slow machine makes it longer, never shorter).
    assert report.manifest.timings["write_s"] >= 2_500 / 20_000
