"""A token bucket: the budget that keeps batch reads from starving live ones."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from parity.errors import ConfigError


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; ``take(n)`` waits for ``n``.

    A batch read takes one token per row it hands out, so a full export runs at ``rate``
    rows/s at most and leaves the database time for live reads. A take larger than ``burst``
    is allowed: it waits until the bucket would have refilled that many, so a big chunk is
    paced instead of refused. ``clock`` and ``sleep`` are injectable so tests need no wall
    clock.
    """

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not rate > 0:
            raise ConfigError(f"archive batch budget: rate must be > 0 rows/s, got {rate!r}")
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else rate)
        if not self.burst > 0:
            raise ConfigError(f"archive batch budget: burst must be > 0, got {burst!r}")
        self._clock, self._sleep = clock, sleep
        self._tokens = self.burst
        self._last = clock()
        self._lock = threading.Lock()
        self.waited = 0.0  # seconds spent waiting, for reports

    def take(self, n: float) -> float:
        """Spend ``n`` tokens, sleeping first if the bucket lacks them; return the wait."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= n
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
            self.waited += wait
        return wait
