"""Keys, outputs, fallbacks parsed from the command line, and store errors."""

from __future__ import annotations

import numpy as np
import pytest

from parity.errors import ConfigError, InputError, TransientError
from parity.hulk import Fallback
from parity.hulk.fallback import parse_key
from parity.hulk.stores import open_publication_store
from parity.hulk.values import key_string, kind_of, normalize_output


def test_keys_are_text_in_key_column_order() -> None:
    assert key_string(12347, ["customer_id"]) == "12347"
    assert key_string(12347.0, ["customer_id"]) == "12347"  # a float column's whole number
    assert key_string(np.int64(5), ["customer_id"]) == "5"
    assert key_string({"b": 2, "a": "x"}, ["a", "b"]) == "x|2"
    assert parse_key("x|2", ["a", "b"], {"a": "str", "b": "int"}) == {"a": "x", "b": 2}
    with pytest.raises(InputError, match="lacks key column"):
        key_string({"a": 1}, ["a", "b"])
    with pytest.raises(InputError, match="separator"):
        key_string("a|b", ["item"])
    with pytest.raises(InputError, match="null"):
        key_string(None, ["item"])


def test_outputs_are_normalized_to_one_of_four_kinds() -> None:
    assert normalize_output(np.float32(0.5)) == 0.5
    assert normalize_output(float("nan")) is None  # unknown, not a number
    assert normalize_output(np.array([1.0, 2.0])) == [1.0, 2.0]
    assert normalize_output([{"class": "a", "probability": 0.7}]) == [{"item": "a", "score": 0.7}]
    assert [kind_of(v) for v in (1.5, "x", True, [1.0], [{"item": 1, "score": 1.0}], None, [])] \
        == ["scalar", "label", "label", "vector", "ranked", None, None]
    with pytest.raises(InputError, match="mixes kinds"):
        kind_of([1.0, {"item": 1, "score": 1.0}])
    with pytest.raises(InputError, match="cannot be published"):
        normalize_output(object())


def test_fallback_from_the_command_line() -> None:
    assert Fallback.parse("previous") == Fallback.previous()
    assert Fallback.parse("default:[]") == Fallback("default", [])
    assert Fallback.parse('default:{"item": "x", "score": 1}').value == {"item": "x", "score": 1.0}
    with pytest.raises(ConfigError, match="not JSON"):
        Fallback.parse("default:nope")
    with pytest.raises(ConfigError, match="use none, previous"):
        Fallback.parse("zero")


def test_store_urls_and_unreachable_redis() -> None:
    with pytest.raises(ConfigError, match="absolute path"):
        open_publication_store("sqlite://relative.db")
    with pytest.raises(ConfigError, match="unknown publication store"):
        open_publication_store("mongodb://x")
    with pytest.raises(TransientError, match="did not answer"):
        open_publication_store("redis://127.0.0.1:1/0")
