"""Online store settings in every form the docs show (issue 8, item 5): URL query, a word with
settings in parity.yaml, a mapping in parity.yaml; unknown settings refused by name."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import parity as pt
from parity.errors import ConfigError
from parity.online import MemoryStore, OnlineFeatures, open_configured
from parity.online.options import from_config, split_url, tolerance_us
from tests.conformance import catalog

FS = catalog()
DB = Path("/w/data/online.db")


@pytest.mark.parametrize(
    ("value", "url", "settings"),
    [
        ("sqlite", "sqlite:///w/data/online.db", {}),
        (None, "sqlite:///w/data/online.db", {}),
        ("sqlite?lookback=none", "sqlite:///w/data/online.db", {"lookback": None}),
        (
            "sqlite?lookback=30d&tolerance=1h",
            "sqlite:///w/data/online.db",
            {"lookback": "30d", "tolerance": "1h"},
        ),
        ("memory", "memory://", {}),
        ("memory://?flush_every=5", "memory://", {"flush_every": 5}),
        ("sqlite:///x/o.db?max_segments=2", "sqlite:///x/o.db", {"max_segments": 2}),
        (
            "redis://h:6379/0?prefix=shop&lookback=6h",
            "redis://h:6379/0?prefix=shop",
            {"lookback": "6h"},
        ),
        (
            {"kind": "sqlite", "lookback": "30d", "tolerance": "1h"},
            "sqlite:///w/data/online.db",
            {"lookback": "30d", "tolerance": "1h"},
        ),
        ({"kind": "memory", "lookback": None}, "memory://", {"lookback": None}),
        (
            {"kind": "redis", "url": "redis://h:6379/1", "prefix": "shop", "flush_seconds": 1},
            "redis://h:6379/1?prefix=shop",
            {"flush_seconds": 1.0},
        ),
        ({"kind": "redis"}, "redis://127.0.0.1:6379/0", {}),
    ],
)
def test_every_documented_form(value: Any, url: str, settings: dict[str, Any]) -> None:
    assert from_config(value, DB) == (url, settings)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("sqlite?colour=red", "unknown online setting 'colour'.*lookback, tolerance"),
        ({"kind": "sqlite", "colour": "red"}, "unknown online setting 'colour'.*kind, url"),
        ({"lookback": "1h"}, "kind=None is not a store.*sqlite, memory, redis"),
        ({"kind": "sqlite", "url": "redis://h/0"}, "names another store"),
        ({"kind": "memory", "prefix": "x"}, "prefix is a Redis setting"),
        ("sqlite?lookback=soon", "lookback='soon' is not valid.*30d"),
        ("sqlite?flush_every=0", "flush_every='0' is not valid"),
        (42, "not a store"),
    ],
)
def test_mistakes_name_the_setting_and_the_fix(value: Any, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        from_config(value, DB)


def test_split_url_keeps_store_settings() -> None:
    assert split_url("redis://h/0?prefix=a&tolerance=0") == (
        "redis://h/0?prefix=a",
        {"tolerance": "0s"},
    )


@pytest.mark.parametrize(
    "online",
    ["online: sqlite?lookback=none", "online: {kind: sqlite, lookback: 30d, tolerance: 1h}"],
)
def test_workspace_accepts_the_forms(tmp_path: Path, online: str) -> None:
    pt.init(tmp_path)
    config = tmp_path / "parity.yaml"
    lines = [
        online if line.startswith("online:") else line for line in config.read_text().splitlines()
    ]
    config.write_text("\n".join(lines) + "\n")
    features = pt.open(tmp_path).online
    expected = None if "none" in online else 30 * 86_400_000_000
    assert features.lookback_us == expected
    assert features.store.url.endswith("data/online.db")
    features.close()


def test_open_configured_passes_settings(tmp_path: Path) -> None:
    online = open_configured(
        {"kind": "memory", "tolerance": "15m"}, tmp_path / "o.db", pt.FactLog(tmp_path), [FS]
    )
    assert online._state.tolerance_us == 15 * 60_000_000
    online.close()


@pytest.mark.parametrize(
    ("tolerance", "expected"),
    [
        (None, 0),
        ("0", 0),
        (timedelta(0), 0),
        ("1h", 3_600_000_000),
        (timedelta(minutes=1), 60_000_000),
    ],
)
def test_tolerance_forms(tolerance: Any, expected: int) -> None:
    assert tolerance_us(tolerance) == expected


def test_a_bad_tolerance_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="tolerance='soon'"):
        OnlineFeatures(MemoryStore(), pt.FactLog(tmp_path), [FS], tolerance="soon")
