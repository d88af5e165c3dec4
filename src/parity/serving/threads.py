"""One BLAS/OpenMP thread per scoring call (``serving.threads``), set once per worker thread.

Many worker threads each scoring with every core's worth of OpenMP threads oversubscribe the
machine: a one-row HistGradientBoosting predict went from 70 ms to 5.6 s p99 under load. The
OpenMP thread count is a per-thread setting, so the limit is applied the first time each
worker thread scores, and not again: calling threadpoolctl per request costs more than scoring
one row.
"""

from __future__ import annotations

import threading
from types import TracebackType

from threadpoolctl import threadpool_limits


class ThreadLimiter:
    """A context manager around scoring: limits this thread's BLAS/OpenMP pools once."""

    def __init__(self, threads: int | None) -> None:
        self.threads = threads
        self._local = threading.local()

    def __enter__(self) -> ThreadLimiter:
        if self.threads is not None and not getattr(self._local, "limited", False):
            # Not restored on purpose: the limit is this worker thread's setting from now on.
            threadpool_limits(limits=self.threads)
            self._local.limited = True
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        return None
