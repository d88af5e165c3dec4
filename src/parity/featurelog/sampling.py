"""Consistent sampling by entity: an entity is logged always or never at a given rate.

Each entity key maps to a fixed point in [0, 1) through a blake2b hash of its canonical form
(key names sorted, values with their type, so ``42`` and ``"42"`` differ). An entity is kept
when its point is below the rate. The choice therefore never changes between requests,
processes or machines (unlike Python's salted ``hash``), and raising the rate only adds
entities: whoever is logged at 10% is also logged at 20%. A ``salt`` picks a different,
independent subset, for logs that should not sample the same entities.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from hashlib import blake2b

from parity.errors import InputError

_SPACE = 1 << 64


def canonical_key(keys: Mapping[str, int | str]) -> bytes:
    """The bytes that identify an entity key: sorted names with typed values, as JSON."""
    return json.dumps(sorted(keys.items()), separators=(",", ":"), ensure_ascii=False).encode()


def key_point(keys: Mapping[str, int | str], salt: str = "") -> float:
    """The entity's fixed point in [0, 1) (for inspection and tests)."""
    return _hash(keys, salt) / _SPACE


def _hash(keys: Mapping[str, int | str], salt: str) -> int:
    digest = blake2b(canonical_key(keys), digest_size=8, key=salt.encode()[:64]).digest()
    return int.from_bytes(digest, "big")


def check_rate(rate: float) -> float:
    """Return ``rate`` as a float, or raise InputError when it is outside [0, 1]."""
    if not 0.0 <= float(rate) <= 1.0:
        raise InputError(
            f"sample_rate {rate!r} is outside [0, 1]; use 1.0 to log every entity, 0.1 for a "
            f"consistent 10% of entities"
        )
    return float(rate)


class KeySampler:
    """Decides per entity key whether to log, consistently for a given ``rate`` and ``salt``."""

    def __init__(self, rate: float = 1.0, salt: str = "") -> None:
        self.rate = check_rate(rate)
        self.salt = salt
        self._threshold = int(self.rate * _SPACE)

    def __call__(self, keys: Mapping[str, int | str]) -> bool:
        """True when the entity identified by ``keys`` is logged."""
        if self._threshold >= _SPACE:
            return True
        if self._threshold == 0:
            return False
        return _hash(keys, self.salt) < self._threshold


def is_sampled(keys: Mapping[str, int | str], rate: float, salt: str = "") -> bool:
    """Whether the entity identified by ``keys`` is logged at ``rate`` (see ``KeySampler``)."""
    return KeySampler(rate, salt)(keys)
