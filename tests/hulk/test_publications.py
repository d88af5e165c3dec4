"""Publish, validate, swap, roll back, GC and look up: the same cases on every backend."""

from __future__ import annotations

import threading

import numpy as np
import pyarrow as pa
import pytest

from parity.errors import (
    InputError,
    NotFoundError,
    NothingToRollBackError,
    NotReadyError,
    SchemaError,
)
from parity.hulk import Fallback, Publications, ValidationPolicy
from parity.hulk.stores import PublicationStore
from tests.hulk.helpers import Recorder, StoreFactory, scores

LENIENT = ValidationPolicy(psi=100.0, max_keys_lost=1.0)


def test_first_publication_goes_live_and_is_looked_up(store: PublicationStore) -> None:
    pubs = Publications(store)
    report = pubs.publish("churn", scores(100), key_columns=["customer_id"])
    assert report.live and report.version == 1
    assert report.manifest.summary.rows == 100
    assert report.manifest.summary.kind == "scalar"
    assert len(report.manifest.summary.checksum) == 32
    result = pubs.lookup("churn", 5)
    assert (result.value, result.version, result.found, result.fallback) == (5 / 97, 1, True, None)
    assert pubs.lookup("churn", {"customer_id": 7}).value == 7 / 97
    assert [r.value for r in pubs.lookup_many("churn", [1, 2])] == [1 / 97, 2 / 97]


def test_a_publication_that_drops_half_the_keys_is_stopped_before_the_swap(
        store: PublicationStore) -> None:
    recorder = Recorder()
    pubs = Publications(store, alerts=recorder.alerter())
    pubs.publish("churn", scores(1000), key_columns=["customer_id"])
    report = pubs.publish("churn", scores(500), key_columns=["customer_id"])
    assert report.status == "rejected" and not report.live
    assert [o.check for o in report.validation.failures] == ["coverage"]
    coverage = report.validation.failures[0].evidence
    assert (coverage["lost"], coverage["previous_keys"]) == (500, 1000)
    assert "v1" in report.headline()
    assert store.live_version("churn") == 1
    assert pubs.lookup("churn", 900).found  # readers never saw version 2
    assert "publication_validation.coverage" in recorder.codes()
    assert pubs.manifest("churn", 2).status == "rejected"


def test_validation_catches_duplicates_nulls_schema_and_distribution(
        store: PublicationStore) -> None:
    pubs = Publications(store)
    pubs.publish("s", scores(2000), key_columns=["customer_id"])
    doubled = pa.concat_tables([scores(2000), scores(10)])
    assert [o.check for o in pubs.publish("s", doubled, key_columns=["customer_id"])
            .validation.failures] == ["duplicates"]
    nulls = scores(2000).set_column(1, "output", pa.array([None] * 100 + [0.5] * 1900))
    failed = pubs.publish("s", nulls, key_columns=["customer_id"]).validation.failures
    assert "nulls" in [o.check for o in failed]
    labels = pa.table({"customer_id": range(2000), "output": ["a"] * 2000})
    assert "schema" in [o.check for o in pubs.publish(
        "s", labels, key_columns=["customer_id"]).validation.failures]
    shifted = pubs.publish("s", scores(2000, scale=3.0), key_columns=["customer_id"])
    assert [o.check for o in shifted.validation.failures] == ["distribution"]
    same = pubs.publish("s", scores(2000, scale=1.01), key_columns=["customer_id"])
    assert same.live, same.validation.headline()


def test_psi_threshold_grows_for_small_publications(store: PublicationStore) -> None:
    # Two samples of 30 from one normal distribution: their PSI is well above the usual
    # 0.1/0.25 rules of thumb by chance alone, and the noise threshold knows it.
    pubs = Publications(store, policy=ValidationPolicy(psi=0.1, max_keys_lost=1.0))
    for seed in (1, 2):
        values = np.random.default_rng(seed).normal(size=30)
        report = pubs.publish("s", pa.table({"customer_id": range(30), "output": values}),
                              key_columns=["customer_id"])
    outcome = next(o for o in report.validation.outcomes if o.check == "distribution")
    assert outcome.evidence["psi"] > 0.1
    assert outcome.evidence["psi_limit"] == outcome.evidence["psi_noise"] > 1.0
    assert outcome.status == "pass" and report.live


def test_rollback_is_one_call_and_gc_keeps_n_versions(store: PublicationStore) -> None:
    pubs = Publications(store, keep=2, policy=LENIENT)
    with pytest.raises(NothingToRollBackError):
        pubs.rollback("s")
    for version in range(1, 5):
        assert pubs.publish("s", scores(50, value=float(version)),
                            key_columns=["customer_id"]).live
    assert store.versions("s") == [3, 4]  # two kept: live and one rollback target
    assert store.count_rows("s", 1) == 0
    assert pubs.rollback("s") == 3
    assert pubs.lookup("s", 1).value == 3.0
    assert pubs.manifest("s", 4).status == "rolled_back"
    with pytest.raises(NothingToRollBackError):
        pubs.rollback("s")  # version 2 was garbage-collected
    assert pubs.publish("s", scores(50, value=5.0), key_columns=["customer_id"]).live
    assert pubs.rollback("s") == 3  # the rolled-back v4 is never a target


def test_fallbacks_are_declared_reported_and_counted(store: PublicationStore) -> None:
    pubs = Publications(store, policy=LENIENT)
    pubs.publish("none", scores(10), key_columns=["customer_id"])
    missing = pubs.lookup("none", 99)
    assert (missing.value, missing.found, missing.fallback) == (None, False, "none")
    pubs.publish("d", scores(10), key_columns=["customer_id"], fallback=Fallback.default(0.25))
    assert pubs.lookup("d", 99).to_dict() == {"key": "99", "value": 0.25, "version": 1,
                                              "found": False, "fallback": "default"}
    pubs.publish("p", scores(10, value=1.0), key_columns=["customer_id"])
    pubs.publish("p", scores(5, value=2.0), key_columns=["customer_id"],
                 fallback=Fallback.previous())
    got = pubs.lookup_many("p", [1, 8, 50])
    assert [(r.value, r.fallback) for r in got] == [(2.0, None), (1.0, "previous"),
                                                   (None, "none")]
    stats = pubs.reader.stats()
    assert stats["p"] == {"found": 1, "fallback:previous": 1, "fallback:none": 1}
    assert stats["d"] == {"fallback:default": 1}


def test_compute_fallback_uses_the_computer(store: PublicationStore) -> None:
    class Doubler:
        def compute(self, keys: list[dict[str, int]]) -> list[float]:
            return [k["customer_id"] * 2.0 for k in keys]

    pubs = Publications(store, computers={"c": Doubler()})
    pubs.publish("c", scores(10), key_columns=["customer_id"], fallback=Fallback.compute())
    assert pubs.lookup("c", 21).to_dict()["value"] == 42.0
    assert pubs.lookup("c", 21).fallback == "compute"
    plain = Publications(store)  # no computer: the gap is reported, not invented
    assert plain.lookup("c", 21).fallback == "none"


def test_unknown_and_not_ready_publications(store: PublicationStore) -> None:
    pubs = Publications(store)
    with pytest.raises(NotFoundError, match="no publication 'x'"):
        pubs.lookup("x", 1)
    pubs.publish("empty", scores(0), key_columns=["customer_id"])  # 0 rows: stopped
    with pytest.raises(NotReadyError, match="no live version"):
        pubs.lookup("empty", 1)


def test_bad_input_names_the_field(store: PublicationStore) -> None:
    pubs = Publications(store)
    with pytest.raises(SchemaError, match="lacks column"):
        pubs.publish("s", pa.table({"id": [1], "output": [1.0]}), key_columns=["customer_id"])
    assert pubs.manifest("s", 1).status == "rejected"  # a failed write is garbage, not "writing"
    with pytest.raises(InputError, match="publication name"):
        pubs.publish("bad name", scores(1), key_columns=["customer_id"])
    pubs.publish("s", scores(3), key_columns=["customer_id"])
    with pytest.raises(InputError, match="keyed by customer_id"):
        pubs.lookup("s", (1, 2))


def test_ranked_and_vector_outputs_round_trip(store: PublicationStore) -> None:
    pubs = Publications(store)
    ranked = pa.table({"item": ["a", "b"], "output": [
        [{"item": "b", "score": 0.9}, {"item": "c", "score": 0.5}],
        [{"item": "a", "score": 0.9}]]})
    assert pubs.publish("similar", ranked, key_columns=["item"]).manifest.summary.kind == "ranked"
    assert pubs.lookup("similar", "a").value == [{"item": "b", "score": 0.9},
                                                 {"item": "c", "score": 0.5}]
    empty = pa.table({"item": ["a", "b", "z"], "output": [
        [{"item": "b", "score": 0.9}], [{"item": "a", "score": 0.9}], []]})
    report = pubs.publish("similar", empty, key_columns=["item"])
    assert report.live and report.manifest.summary.nulls == 0  # "nothing similar" is known
    assert pubs.lookup("similar", "z").value == []
    vectors = pa.table({"u": [1, 2], "output": [[0.1, 0.2], [0.3, 0.4]]})
    assert pubs.publish("emb", vectors, key_columns=["u"]).manifest.summary.kind == "vector"
    assert pubs.lookup("emb", 2).value == [0.3, 0.4]


def test_concurrent_readers_never_see_a_mix_of_versions(new_store: StoreFactory) -> None:
    n_keys, versions, readers = 200, 8, 3
    writer = Publications(new_store(), keep=2, policy=LENIENT, write_batch=50)
    writer.publish("mix", scores(n_keys, value=0.0), key_columns=["customer_id"])
    done = threading.Event()
    mixed: list[object] = []
    reads = [0] * readers
    errors: list[BaseException] = []

    def read(slot: int) -> None:
        pubs = Publications(new_store(), shadow=None)
        try:
            while True:  # at least one read, then until the writer is done
                finished = done.is_set()
                results = pubs.lookup_many("mix", list(range(n_keys)))
                values = {r.value for r in results}
                if values != {float(results[0].version - 1)} or not all(r.found for r in results):
                    mixed.append((results[0].version, sorted(values, key=str)[:3]))
                reads[slot] += 1
                if finished:
                    return
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=read, args=(i,)) for i in range(readers)]
    for t in threads:
        t.start()
    for version in range(1, versions):
        report = writer.publish("mix", scores(n_keys, value=float(version)),
                                key_columns=["customer_id"])
        assert report.live, report.validation.headline()
    done.set()
    for t in threads:
        t.join()
    assert not errors, errors
    assert all(r >= 1 for r in reads)
    assert mixed == []


def test_a_publication_racing_another_does_not_overwrite_it() -> None:
    from parity.hulk.stores import MemoryPublicationStore

    class Racing(MemoryPublicationStore):
        """Another publisher swaps its version in while ours is being validated."""

        raced = False

        def count_rows(self, name: str, version: int) -> int:
            if not self.raced and version == 3:
                self.raced = True
                assert self.swap(name, 1, 2)
            return super().count_rows(name, version)

    store = Racing()
    pubs = Publications(store, policy=LENIENT)
    pubs.publish("s", scores(10, value=1.0), key_columns=["customer_id"])
    assert store.allocate_version("s") == 2  # the other publisher's version
    store.write_rows("s", 2, [("1", b"2.0")])
    report = pubs.publish("s", scores(10, value=3.0), key_columns=["customer_id"])
    assert report.status == "rejected"
    assert [o.check for o in report.validation.failures] == ["swap"]
    assert store.live_version("s") == 2


def test_a_reader_that_sees_the_new_version_at_once_has_its_full_manifest() -> None:
    from parity.hulk.reader import LookupResult
    from parity.hulk.stores import MemoryPublicationStore

    seen: list[LookupResult] = []

    class Watching(MemoryPublicationStore):
        """A reader looks a gap up in the very instant the pointer moves."""

        def swap(self, name: str, expected: int | None, version: int | None) -> bool:
            moved = super().swap(name, expected, version)
            if moved and version == 2:
                seen.append(Publications(self, shadow=None).lookup(name, 9))
            return moved

    store = Watching()
    pubs = Publications(store, policy=LENIENT)
    pubs.publish("s", scores(10, value=1.0), key_columns=["customer_id"])
    pubs.publish("s", scores(5, value=2.0), key_columns=["customer_id"],
                 fallback=Fallback.previous())
    assert [(r.version, r.value, r.fallback) for r in seen] == [(2, 1.0, "previous")]


def test_fallbacks_are_exported_to_prometheus(store: PublicationStore) -> None:
    from prometheus_client import REGISTRY

    name = f"prom_{id(store)}"
    labels = {"publication": name, "reason": "default"}
    before = REGISTRY.get_sample_value("parity_publication_fallbacks_total", labels) or 0.0
    pubs = Publications(store)
    pubs.publish(name, scores(5), key_columns=["customer_id"], fallback=Fallback.default(0.0))
    pubs.lookup_many(name, [1, 100, 101])
    after = REGISTRY.get_sample_value("parity_publication_fallbacks_total", labels)
    assert after == before + 2
    found = REGISTRY.get_sample_value("parity_publication_lookups_total",
                                      {"publication": name, "outcome": "found"})
    assert found == 1


def test_a_version_collected_between_its_rows_and_its_manifest_is_read_again(
    new_store: StoreFactory,
) -> None:
    """The race the concurrent-readers test once hit under load: a reader takes v2's rows in
    one snapshot, then v3 and v4 are published and v2 collected (keep=2) before the reader
    fetches v2's manifest. The reader must answer from v4, not fail with "v2 has no
    manifest"."""
    writer = Publications(new_store(), keep=2, policy=LENIENT)

    def publish(value: float) -> bool:
        report = writer.publish("mix", scores(5, value=value), key_columns=["customer_id"])
        return bool(report.live)

    publish(0.0)
    reader = Publications(new_store(), shadow=None)
    assert reader.lookup("mix", 1).version == 1  # caches v1's manifest, not v2's
    assert publish(1.0)
    store = reader.reader.store
    real_read_live = store.read_live
    published: list[bool] = []

    def read_then_swap(name: str, keys: list[str]) -> tuple[int | None, list[bytes | None]]:
        answer = real_read_live(name, keys)
        if not published:  # between this snapshot and the manifest read: v2 is collected
            published.extend(publish(v) for v in (2.0, 3.0))
        return answer

    store.read_live = read_then_swap  # type: ignore[method-assign]
    results = reader.lookup_many("mix", [1, 2])
    assert published == [True, True]
    assert {r.version for r in results} == {4} and {r.value for r in results} == {3.0}
