"""Publication alerts go through the Sentinel's alert channels (log, webhook, hooks).

A stopped publication (validation failed before the swap) or a rolled-back one (the shadow
period found it disagreeing with the previous version) becomes a Sentinel ``Verdict`` with one
failed check, so the same webhook and hooks that hear about stopped models hear about it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from parity.sentinel.verdict import FAIL, CheckResult, Finding, Verdict
from parity.timeutil import UTC


class AlertChannel(Protocol):
    """What ``parity.sentinel.Alerter`` offers: send a verdict for an event."""

    def send(self, verdict: Verdict, event: str) -> list[str]:
        """Alert; return the channels that failed."""
        ...


def publication_verdict(name: str, version: int, check: str, findings: Sequence[tuple[str, str]],
                        live_version: int | None, evidence: dict[str, Any] | None = None
                        ) -> Verdict:
    """A failed Sentinel verdict for publication ``name`` version ``version``."""
    result = CheckResult.failed(check, [Finding(code, message) for code, message in findings],
                                evidence=evidence or {})
    return Verdict(model=f"publication:{name}", version=version, status=FAIL, results=[result],
                   checked_at=datetime.now(UTC), live_version=live_version)


def send_alert(channel: AlertChannel | None, verdict: Verdict, event: str) -> list[str]:
    """Send ``verdict`` through ``channel`` if there is one; the failed channels."""
    if channel is None:
        return []
    return channel.send(verdict, event)
