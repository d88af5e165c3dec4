"""A small, thread-safe pool of database connections: one per live or batch load."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

from parity.errors import ConfigError, ParityError

C = TypeVar("C")


class Pool(Generic[C]):
    """At most ``size`` connections made by ``connect``, lent one at a time.

    A caller waits for a free connection rather than opening more, so the batch pool can never
    take connections (or database backends) the live pool needs. A connection that raised is
    closed and replaced, since its session state is unknown.
    """

    def __init__(self, name: str, size: int, connect: Callable[[], C], close: Callable[[C], None]):
        if size < 1:
            raise ConfigError(f"archive {name} pool size must be at least 1, got {size}")
        self.name = name
        self._connect, self._close = connect, close
        self._free: queue.LifoQueue[C] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)
        self._all: list[C] = []
        self._lock = threading.Lock()

    @contextmanager
    def connection(self) -> Iterator[C]:
        """Borrow a connection for the duration of the block."""
        self._slots.acquire()
        try:
            try:
                conn = self._free.get_nowait()
            except queue.Empty:
                conn = self._connect()
                with self._lock:
                    self._all.append(conn)
            try:
                yield conn
            except ParityError:  # raised on purpose after a clean rollback: still usable
                self._free.put(conn)
                raise
            except BaseException:
                self._discard(conn)
                raise
            self._free.put(conn)
        finally:
            self._slots.release()

    def _discard(self, conn: C) -> None:
        with self._lock:
            if conn in self._all:
                self._all.remove(conn)
        with contextlib.suppress(Exception):  # a broken connection may fail to close
            self._close(conn)

    def close(self) -> None:
        """Close every connection the pool made."""
        with self._lock:
            conns, self._all = self._all, []
        while not self._free.empty():
            self._free.get_nowait()
        for conn in conns:
            with contextlib.suppress(Exception):  # closing is best effort at shutdown
                self._close(conn)
