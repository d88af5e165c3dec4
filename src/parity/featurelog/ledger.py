"""Which accepted records are durable: the writer's answer to "is my record on disk?".

Every record ``FeatureLogWriter.enqueue`` accepts gets an *ordinal* (1, 2, ... in acceptance
order, per writer). The writer thread settles ordinals in order: after an fsync every ordinal
up to the last one written is settled; a write error settles everything taken so far as lost.
A settled ordinal is ``durable`` unless it falls in a failed interval (lost to a write error, or
a record that could not be encoded). Only the most recent ``keep`` failed intervals are kept;
an ordinal older than those reads as ``unknown`` rather than a guess.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass
from typing import Literal

Outcome = Literal["durable", "lost", "pending", "unknown"]
Status = Literal["queued", "dropped", "sampled_out"]


@dataclass(frozen=True)
class Receipt:
    """What ``enqueue`` did with one record: ``queued`` (with its ordinal), ``dropped`` (full
    queue, or the writer is gone) or ``sampled_out``."""

    status: Status
    ordinal: int | None = None


class Ledger:
    """Settled ordinals and failed intervals; the writer guards it with its own lock."""

    def __init__(self, keep: int = 100_000) -> None:
        self.settled = 0
        self._starts: deque[int] = deque(maxlen=keep)
        self._ends: deque[int] = deque(maxlen=keep)

    def fail(self, first: int, last: int) -> None:
        """Mark ordinals ``first..last`` (inclusive) as not durable. Intervals arrive roughly
        in order; one that overlaps the latest ones is merged with them."""
        if last < first:
            return
        while self._starts and self._starts[-1] >= first:
            self._starts.pop()
            last = max(last, self._ends.pop())
        if self._ends and first <= self._ends[-1] + 1:
            self._ends[-1] = max(self._ends[-1], last)
            return
        self._starts.append(first)
        self._ends.append(last)

    def settle(self, upto: int) -> None:
        """Every ordinal up to ``upto`` is now durable or failed."""
        self.settled = max(self.settled, upto)

    def outcome(self, ordinal: int) -> Outcome:
        """Whether the record with ``ordinal`` is durable, lost, still pending or too old."""
        if ordinal > self.settled:
            return "pending"
        if self._starts and len(self._starts) == self._starts.maxlen and \
                ordinal < self._starts[0]:
            return "unknown"
        index = bisect.bisect_right(self._starts, ordinal) - 1
        if index >= 0 and ordinal <= self._ends[index]:
            return "lost"
        return "durable"
