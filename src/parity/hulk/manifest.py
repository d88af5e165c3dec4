"""A publication version's manifest: what was written, how it looks, where it came from.

The ``SummaryBuilder`` sees every row as it streams past (nothing is held but a bounded
sample) and produces the ``OutputSummary``: row count, nulls, duplicate keys, output kind,
an order-independent checksum, and a reservoir sample of the outputs' numeric projection
(or label counts) that the next version's distribution check compares against.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

from parity.errors import InputError
from parity.hulk.values import OutputKind, kind_of, numeric_projection
from parity.timeutil import UTC

Status = Literal["writing", "rejected", "live", "retired", "rolled_back"]
SAMPLE_SIZE = 5_000
_MAX_LABELS = 200  # distinct labels counted; more are pooled as "(other)"
_MOD = 1 << 128


@dataclass
class OutputSummary:
    """What a version's outputs look like (JSON-ready)."""

    rows: int = 0
    nulls: int = 0
    duplicate_keys: int = 0
    kind: OutputKind | None = None
    checksum: str = ""
    sample: list[float] = field(default_factory=list)
    labels: dict[str, int] = field(default_factory=dict)
    numeric: dict[str, float] = field(default_factory=dict)


class SummaryBuilder:
    """Accumulates an ``OutputSummary`` over batches of ``(key, value, stored bytes)``."""

    def __init__(self, seed: int = 0) -> None:
        self.summary = OutputSummary()
        self._seen_keys: set[str] = set()
        self._rng = random.Random(seed)
        self._numbers = 0
        self._checksum = 0
        self._labels: Counter[str] = Counter()
        self._min = float("inf")
        self._max = float("-inf")
        self._sum = 0.0

    def add(self, key: str, value: Any, stored: bytes) -> None:
        """Count one output."""
        s = self.summary
        s.rows += 1
        if key in self._seen_keys:
            s.duplicate_keys += 1
        else:
            self._seen_keys.add(key)
        # A sum of per-row digests: independent of row order, so every backend and every
        # batch size gives the same checksum for the same rows.
        digest = hashlib.blake2b(key.encode() + b"\x00" + stored, digest_size=16).digest()
        self._checksum = (self._checksum + int.from_bytes(digest, "big")) % _MOD
        if value is None:
            s.nulls += 1
            return
        kind = kind_of(value)
        if kind is None:
            return  # an empty list: a known "nothing" (no similar items), not a null
        if s.kind is None:
            s.kind = kind
        elif kind != s.kind:
            raise InputError(
                f"output for key {key!r} is a {kind} but earlier outputs are {s.kind}s; "
                f"a publication holds one kind of output"
            )
        if kind == "label":
            label = str(value)
            if label in self._labels or len(self._labels) < _MAX_LABELS:
                self._labels[label] += 1
            else:
                self._labels["(other)"] += 1
            return
        number = numeric_projection(value, kind)
        if number is None:
            return
        self._numbers += 1
        self._min, self._max = min(self._min, number), max(self._max, number)
        self._sum += number
        if len(s.sample) < SAMPLE_SIZE:
            s.sample.append(number)
        else:  # reservoir sampling: every output equally likely to be kept
            j = self._rng.randrange(self._numbers)
            if j < SAMPLE_SIZE:
                s.sample[j] = number

    @property
    def keys(self) -> set[str]:
        """Every distinct key seen (for the coverage check)."""
        return self._seen_keys

    def finish(self) -> OutputSummary:
        """The summary of everything added."""
        s = self.summary
        s.checksum = f"{self._checksum:032x}"
        s.labels = dict(self._labels.most_common())
        if self._numbers:
            s.numeric = {"min": self._min, "max": self._max,
                         "mean": self._sum / self._numbers, "count": float(self._numbers)}
        return s


@dataclass
class Manifest:
    """One version of a publication: its data, its checks and its lineage (JSON-ready)."""

    name: str
    version: int
    key_columns: list[str]
    status: Status
    created_at: str
    key_types: dict[str, str] = field(default_factory=dict)
    previous: int | None = None
    summary: OutputSummary = field(default_factory=OutputSummary)
    fallback: dict[str, Any] = field(default_factory=lambda: {"kind": "none"})
    lineage: dict[str, Any] = field(default_factory=dict)
    validation: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> str:
        """The stored text."""
        return json.dumps(asdict(self), separators=(",", ":"), default=str)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        """The inverse of ``to_json``."""
        data = json.loads(text)
        data["summary"] = OutputSummary(**data.get("summary", {}))
        return cls(**data)

    def note(self, event: str, **detail: Any) -> None:
        """Append a status change to the version's history (kept in the manifest)."""
        self.history.append({"event": event, "at": now_iso(), **detail})

    def brief(self) -> dict[str, Any]:
        """The manifest without the sample (for listings and HTTP answers)."""
        data = asdict(self)
        data["summary"].pop("sample", None)
        return data


def now_iso() -> str:
    """The current UTC time as ISO text."""
    return datetime.now(UTC).isoformat()
