"""The publication store conformance suite: every backend passes the same cases."""

from __future__ import annotations

import pytest

from parity.errors import StateError
from parity.hulk.stores import PublicationStore
from tests.hulk.helpers import StoreFactory


def test_versions_are_allocated_in_increasing_order(store: PublicationStore) -> None:
    assert [store.allocate_version("a") for _ in range(3)] == [1, 2, 3]
    assert store.allocate_version("b") == 1


def test_rows_are_read_back_and_the_last_write_wins(store: PublicationStore) -> None:
    store.write_rows("a", 1, [("k1", b"1"), ("k2", b"2")])
    store.write_rows("a", 1, [("k2", b"22"), ("k3", b"3")])
    assert store.read_rows("a", 1, ["k1", "k2", "k3", "nope"]) == [b"1", b"22", b"3", None]
    assert store.read_rows("a", 2, ["k1"]) == [None]
    assert store.read_rows("a", 1, []) == []
    assert store.count_rows("a", 1) == 3
    assert store.count_rows("a", 2) == 0


def test_nothing_is_live_before_the_first_swap(store: PublicationStore) -> None:
    store.write_rows("a", 1, [("k1", b"1")])
    assert store.live_version("a") is None
    assert store.read_live("a", ["k1", "k2"]) == (None, [None, None])


def test_swap_is_a_compare_and_set(store: PublicationStore) -> None:
    store.write_rows("a", 1, [("k", b"1")])
    store.write_rows("a", 2, [("k", b"2")])
    assert store.swap("a", None, 1)
    assert not store.swap("a", None, 2)  # it no longer points at nothing
    assert store.read_live("a", ["k", "x"]) == (1, [b"1", None])
    assert not store.swap("a", 2, 2)
    assert store.swap("a", 1, 2)
    assert store.read_live("a", ["k"]) == (2, [b"2"])
    assert store.live_version("a") == 2


def test_iter_keys_returns_every_key_once(store: PublicationStore) -> None:
    keys = [f"key-{i}" for i in range(257)]
    store.write_rows("a", 1, [(k, b"x") for k in keys])
    seen = [k for batch in store.iter_keys("a", 1, batch_size=50) for k in batch]
    assert sorted(set(seen)) == sorted(keys)
    assert list(store.iter_keys("a", 9)) == []


def test_manifests_and_names(store: PublicationStore) -> None:
    store.put_manifest("b", 2, '{"v": 2}')
    store.put_manifest("b", 1, '{"v": 1}')
    store.put_manifest("a", 1, "{}")
    store.put_manifest("b", 2, '{"v": 22}')
    assert store.versions("b") == [1, 2]
    assert store.get_manifest("b", 2) == '{"v": 22}'
    assert store.get_manifest("b", 3) is None
    assert store.names() == ["a", "b"]


def test_drop_removes_a_version_but_never_the_live_one(store: PublicationStore) -> None:
    for version in (1, 2):
        store.write_rows("a", version, [("k", str(version).encode())])
        store.put_manifest("a", version, "{}")
    store.swap("a", None, 2)
    with pytest.raises(StateError, match="live"):
        store.drop_version("a", 2)
    store.drop_version("a", 1)
    assert store.count_rows("a", 1) == 0
    assert store.versions("a") == [2]
    assert store.read_live("a", ["k"]) == (2, [b"2"])


def test_a_second_connection_sees_the_same_state(new_store: StoreFactory) -> None:
    first, second = new_store(), new_store()
    version = first.allocate_version("a")
    first.write_rows("a", version, [("k", b"v")])
    first.put_manifest("a", version, "{}")
    assert first.swap("a", None, version)
    assert second.read_live("a", ["k"]) == (version, [b"v"])
    assert second.allocate_version("a") == version + 1


def test_keys_and_values_are_bytes_exact(store: PublicationStore) -> None:
    value = '{"x":"é ✓","y":[1,2.5]}'.encode()
    store.write_rows("a", 1, [("clé|2", value)])
    store.swap("a", None, 1)
    assert store.read_live("a", ["clé|2"]) == (1, [value])
