"""Alerts when the sentinel stops (or promotes) a candidate: a log line, a webhook, hooks.

Alerting never breaks the gate: a webhook that does not answer or a hook that raises is
logged and reported back, and the decision stands.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

from parity.sentinel.verdict import Verdict

Hook = Callable[[Verdict, str], None]
"""A Python hook: called with the verdict and the event (``stopped``, ``promoted``, ``held``,
``warning``)."""

LOGGER = logging.getLogger("parity.sentinel")


class Alerter:
    """Sends one alert per decision to the log, an optional webhook and optional hooks.

    ``webhook`` receives a POST with a JSON body (``alert_payload``); ``notify`` decides which
    events go to the webhook and hooks (default: ``stopped`` and ``warning``, the evidence of a
    world that moved under both models; the log gets every event).
    """

    def __init__(
        self,
        webhook: str | None = None,
        hooks: Sequence[Hook] = (),
        *,
        notify: Sequence[str] = ("stopped", "warning"),
        timeout: float = 5.0,
        logger: logging.Logger | None = None,
    ) -> None:
        self.webhook = webhook
        self.hooks = list(hooks)
        self.notify = set(notify)
        self.timeout = timeout
        self.logger = logger or LOGGER

    def send(self, verdict: Verdict, event: str) -> list[str]:
        """Alert about ``verdict``; return the alert channels that failed (with why)."""
        line = f"sentinel {event}: {verdict.headline()}"
        if verdict.paths.get("report"):
            line += f" (report: {verdict.paths['report']})"
        level = logging.WARNING if event in ("stopped", "warning") else logging.INFO
        self.logger.log(level, line)
        if event not in self.notify:
            return []
        errors = []
        if self.webhook:
            error = post_json(self.webhook, alert_payload(verdict, event), self.timeout)
            if error:
                errors.append(f"webhook {self.webhook}: {error}")
        for hook in self.hooks:
            try:
                hook(verdict, event)
            except Exception as err:  # a broken hook must not undo the decision
                errors.append(f"hook {getattr(hook, '__name__', hook)!r}: "
                              f"{type(err).__name__}: {err}")
        for error in errors:
            self.logger.error("sentinel alert failed: %s", error)
        return errors


def alert_payload(verdict: Verdict, event: str) -> dict[str, Any]:
    """The JSON body POSTed to the webhook."""
    return {
        "event": event,
        "model": verdict.model,
        "version": verdict.version,
        "status": verdict.status,
        "text": verdict.headline(),
        "live_version": verdict.live_version,
        "failures": [
            {"check": r.check, "reason": r.reason, "codes": sorted(r.codes)}
            for r in verdict.failures
        ],
        "warnings": [w.to_dict() for w in verdict.warnings],
        "report": verdict.paths.get("report"),
        "checked_at": verdict.checked_at.isoformat(),
    }


def post_json(url: str, payload: dict[str, Any], timeout: float) -> str | None:
    """POST ``payload`` as JSON; None on a 2xx answer, else what went wrong."""
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "parity-sentinel"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status = response.status
    except urllib.error.HTTPError as err:
        return f"HTTP {err.code} {err.reason}"
    except (urllib.error.URLError, OSError, ValueError) as err:
        return f"{type(err).__name__}: {getattr(err, 'reason', err)}"
    return None if 200 <= status < 300 else f"HTTP {status}"
