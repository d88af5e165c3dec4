"""Types shared by the online tests and their fixtures (a non-test module)."""

from __future__ import annotations

from collections.abc import Callable

from parity.online import OnlineStore

#: Opens one more store on the same backend and URL as the test's store.
StoreFactory = Callable[[], OnlineStore]
