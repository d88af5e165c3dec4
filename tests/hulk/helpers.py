"""Small builders shared by the Hulk tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa

from parity.hulk.stores import PublicationStore
from parity.sentinel import Alerter, Verdict

#: Opens one more store on the same backend and URL as the test's store.
StoreFactory = Callable[[], PublicationStore]
#: The moment the Hulk tests publish at.
AT = "2024-02-01T00:00:00Z"


def scores(n: int, value: Any = None, start: int = 0, scale: float = 1.0) -> pa.Table:
    """Keys ``start..start+n-1`` (column ``customer_id``) with outputs ``value`` or a spread."""
    keys = list(range(start, start + n))
    outputs = [value if value is not None else (k % 97) / 97 * scale for k in keys]
    return pa.table({"customer_id": keys, "output": outputs})


class Recorder:
    """A Sentinel alert hook that remembers what it heard."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Verdict]] = []

    def __call__(self, verdict: Verdict, event: str) -> None:
        self.events.append((event, verdict))

    def alerter(self) -> Alerter:
        """A Sentinel ``Alerter`` whose only hook is this recorder."""
        return Alerter(hooks=[self], notify=("stopped", "promoted"))

    def codes(self) -> Sequence[str]:
        """Finding codes of every alert heard."""
        return [f.code for _, v in self.events for r in v.results for f in r.findings]
