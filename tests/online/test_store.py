"""The OnlineStore interface, one suite for every backend: append, read, replace, directory,
metadata, clear; and the block codec the durable stores use."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from parity import FactLog
from parity.errors import ConfigError
from parity.online import Block, open_online
from parity.online.base import FOREIGN_FLAG, decode, encode
from tests.conformance import catalog, plays
from tests.online.helpers import StoreFactory


def block(n: int, start: int = 0, fid: str = "f") -> Block:
    minutes = np.arange(start, start + n, dtype=np.float64) / 4
    titles = np.empty(n, dtype=object)
    titles[:] = [None if i % 3 == 0 else f"t{i}" for i in range(n)]
    return Block(
        np.arange(start, start + n, dtype=np.int64) * 1000,
        np.arange(start, start + n, dtype=np.int64) * 1000 + 5,
        np.array([FOREIGN_FLAG if i == 1 else 0 for i in range(n)], np.uint8),
        np.array([f"{fid}{start + i}" for i in range(n)], dtype=object),
        {"minutes": minutes, "title": titles, "rating": np.arange(n, dtype=np.int64) - 2},
        {
            "minutes": np.ones(n, bool),
            "title": titles != None,  # noqa: E711
            "rating": np.arange(n) % 2 == 0,
        },
    )


def same(a: Block, b: Block) -> None:
    assert a.event_time.tolist() == b.event_time.tolist()
    assert a.recorded_at.tolist() == b.recorded_at.tolist()
    assert a.flags.tolist() == b.flags.tolist()
    assert a.fact_id.tolist() == b.fact_id.tolist()
    for name in a.values:
        assert a.valid[name].tolist() == b.valid[name].tolist()
        keep = a.valid[name]
        assert a.values[name][keep].tolist() == b.values[name][keep].tolist()


def test_codec_round_trip() -> None:
    original = block(7)
    original.ordered = True
    decoded = decode(plays, encode(plays, original))
    same(original, decoded)
    assert decoded.ordered and not decoded.unique_ids


def test_append_then_read_in_order(new_store: StoreFactory) -> None:
    store = new_store()
    counts = store.append(plays, {"[1]": block(3), "[2]": block(2, 10)}, {"f0": "[1]"})
    assert counts == {"[1]": 1, "[2]": 1}
    assert store.append(plays, {"[1]": block(2, 3)}, {})["[1]"] == 2
    first, second, unknown = store.read(plays, ["[1]", "[2]", "[3]"])
    assert [len(b) for b in first] == [3, 2] and unknown == []
    same(first[0], block(3))
    same(second[0], block(2, 10))
    assert store.directory(plays, ["f0", "nope"]) == ["[1]", None]
    assert sorted(store.entities(plays)) == ["[1]", "[2]"]


def test_replace_compacts_the_oldest_segments(new_store: StoreFactory) -> None:
    store = new_store()
    for i in range(3):
        store.append(plays, {"[1]": block(1, i)}, {f"f{i}": "[1]"})
    assert store.replace(plays, "[1]", 2, block(2), {"f0": None, "f1": "[1]\n[2]"})
    segments = store.read(plays, ["[1]"])[0]
    assert [b.fact_id.tolist() for b in segments] == [["f0", "f1"], ["f2"]]
    assert store.directory(plays, ["f0", "f1"]) == [None, "[1]\n[2]"]
    assert not store.replace(plays, "[1]", 5, None, {})  # it does not hold 5 segments
    assert store.replace(plays, "[1]", 2, None, {})  # evicted to nothing
    assert store.read(plays, ["[1]"]) == [[]]
    assert list(store.entities(plays)) == []


def test_meta_and_clear(new_store: StoreFactory) -> None:
    store = new_store()
    assert store.get_meta("watermark") is None
    store.set_meta("watermark", "12")
    store.append(plays, {"[1]": block(2)}, {"f0": "[1]"})
    assert store.entity_bytes(plays, "[1]") > 0
    store.clear(plays)
    assert store.read(plays, ["[1]"]) == [[]] and store.directory(plays, ["f0"]) == [None]
    assert store.get_meta("watermark") == "12"


def test_a_second_client_sees_the_same_data(new_store: StoreFactory, store_url: str) -> None:
    if store_url.startswith("memory"):
        pytest.skip("memory stores are private to one object by design")
    writer, reader = new_store(), new_store()
    writer.append(plays, {'["x"]': block(2)}, {})
    assert len(reader.read(plays, ['["x"]'])[0]) == 1


def test_codec_keeps_odd_strings() -> None:
    odd = block(3)
    odd.values["title"][:] = ["with\x00nul", "", None]
    odd.valid["title"][:] = [True, True, False]
    odd.fact_id[:] = ["a\x00", "é", "[1]"]
    same(odd, decode(plays, encode(plays, odd)))


def test_url_options(tmp_path: Path) -> None:
    online = open_online(
        f"sqlite:///{tmp_path}/o.db?lookback=none&flush_every=7", FactLog(tmp_path), [catalog()]
    )
    assert online.lookback_us is None and online.flush_every == 7
    online.close()
    with pytest.raises(ConfigError, match="unknown online setting 'color'.*lookback"):
        open_online("memory://?color=red", FactLog(tmp_path), [catalog()])
