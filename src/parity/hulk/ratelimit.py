"""A token bucket that paces bulk writes so live lookups keep their latency."""

from __future__ import annotations

import time
from collections.abc import Callable

from parity.errors import ConfigError


class RateLimiter:
    """At most ``rows_per_second`` rows on average, in bursts of at most ``burst`` rows.

    ``None`` means unlimited. ``acquire(n)`` blocks until ``n`` rows may be written.
    """

    def __init__(self, rows_per_second: float | None, burst: int | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if rows_per_second is not None and rows_per_second <= 0:
            raise ConfigError(f"rows_per_second={rows_per_second!r} must be positive "
                              f"(or None for unlimited)")
        self.rate = rows_per_second
        self.burst = burst if burst is not None else int(rows_per_second or 0) or 1
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(self.burst)
        self._last = clock()
        self.waited = 0.0

    def acquire(self, rows: int) -> None:
        """Wait until ``rows`` rows may be written (a request above ``burst`` waits for the
        whole amount, so large batches are paced, never refused)."""
        if self.rate is None:
            return
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
        self._last = now
        self._tokens -= rows
        if self._tokens < 0:
            wait = -self._tokens / self.rate
            self.waited += wait
            self._sleep(wait)
            self._last = self._clock()
            self._tokens = 0.0
