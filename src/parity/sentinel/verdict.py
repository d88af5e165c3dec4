"""What the sentinel decides: one ``CheckResult`` per check, and the ``Verdict`` that sums them.

A check ends in one of four statuses:

- ``pass``: the evidence shows the candidate is fine on this count;
- ``fail``: the evidence shows a problem; ``findings`` say which, with a stable ``code``
  (``"artifact.timeout"``, ``"shadow_accuracy.inferior"``...) and a message a person can act on;
- ``not_enough_data``: there is too little data to tell either way (below a minimum sample);
- ``skipped``: the check does not apply (a regression model has no calibration), or it could not
  run because a check it depends on failed (no model to score when the artifact is broken).

The verdict is ``fail`` if any check failed, else ``not_enough_data`` if any check lacked data
(unless the configuration allows that check to), else ``pass``. Everything here is JSON
(``to_dict`` / ``from_dict``) so that a verdict can be stored, reread and rendered later.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from parity.errors import InputError, NotFoundError
from parity.timeutil import UTC

Status = Literal["pass", "fail", "not_enough_data", "skipped"]
PASS: Status = "pass"
FAIL: Status = "fail"
NOT_ENOUGH_DATA: Status = "not_enough_data"
SKIPPED: Status = "skipped"
STATUSES: tuple[Status, ...] = (PASS, FAIL, NOT_ENOUGH_DATA, SKIPPED)

# What the watcher did with a verdict (None: a plain check that moved nothing).
Decision = Literal["promoted", "stopped", "held"]


@dataclass(frozen=True)
class Finding:
    """One problem a check found: a stable ``code`` (``<check>.<what>``) and a message."""

    code: str
    message: str

    def to_dict(self) -> dict[str, str]:
        """A JSON-ready dict."""
        return {"code": self.code, "message": self.message}


@dataclass
class CheckResult:
    """The outcome of one check: status, headline, findings, evidence and figure data.

    ``reason`` is a one-line headline (what was found and what to do). ``evidence`` holds the
    numbers behind the status (sample sizes, estimates, intervals, thresholds); ``figures``
    holds data the HTML report plots (histograms, reliability bins, intervals). Both must be
    JSON-compatible: numbers, strings, bools, None, lists and dicts of those.
    """

    check: str
    status: Status
    reason: str
    findings: list[Finding] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0
    warnings: list[Finding] = field(default_factory=list)

    @property
    def codes(self) -> set[str]:
        """The codes of every finding."""
        return {f.code for f in self.findings}

    @classmethod
    def passed(cls, check: str, reason: str, **extra: Any) -> CheckResult:
        """A passing result."""
        return cls(check, PASS, reason, **extra)

    @classmethod
    def failed(
        cls, check: str, findings: Iterable[Finding], reason: str | None = None, **extra: Any
    ) -> CheckResult:
        """A failing result; the headline defaults to the first finding (and a count)."""
        found = list(findings)
        if not found:
            raise InputError(
                f"check {check!r}: a failure needs at least one finding; pass a Finding that "
                f"says what failed, or report the check as skipped"
            )
        if reason is None:
            more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
            reason = found[0].message + more
        return cls(check, FAIL, reason, findings=found, **extra)

    @classmethod
    def not_enough_data(cls, check: str, reason: str, **extra: Any) -> CheckResult:
        """Too little data to decide."""
        return cls(check, NOT_ENOUGH_DATA, reason, **extra)

    @classmethod
    def skipped(cls, check: str, reason: str, **extra: Any) -> CheckResult:
        """The check does not apply or could not run."""
        return cls(check, SKIPPED, reason, **extra)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (non-finite floats become None)."""
        return {
            "check": self.check,
            "status": self.status,
            "reason": self.reason,
            "findings": [f.to_dict() for f in self.findings],
            "evidence": _clean(self.evidence),
            "figures": _clean(self.figures),
            "duration_s": round(self.duration_s, 6),
            "warnings": [w.to_dict() for w in self.warnings],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckResult:
        """The inverse of ``to_dict``."""
        return cls(
            check=data["check"],
            status=_status(data["status"]),
            reason=data["reason"],
            findings=[Finding(f["code"], f["message"]) for f in data.get("findings", [])],
            evidence=dict(data.get("evidence", {})),
            figures=dict(data.get("figures", {})),
            duration_s=float(data.get("duration_s", 0.0)),
            warnings=[Finding(w["code"], w["message"]) for w in data.get("warnings", [])],
        )


@dataclass
class Verdict:
    """The sentinel's judgement of one model version, with every check's result.

    ``live_version`` / ``anchor_version`` name what the candidate was compared with.
    ``decision`` records what the watcher did (promoted, stopped, held), ``paths`` where the
    verdict and its report were stored. ``shadow_window`` tells which traffic was judged and
    what was excluded; ``identical_to_live`` names the live version whose artifact is
    byte-identical to this one, if any.
    """

    model: str
    version: int
    status: Status
    results: list[CheckResult]
    checked_at: datetime
    duration_s: float = 0.0
    artifact_sha256: str | None = None
    live_version: int | None = None
    anchor_version: int | None = None
    config: dict[str, Any] = field(default_factory=dict)
    decision: Decision | None = None
    paths: dict[str, str] = field(default_factory=dict)
    shadow_window: dict[str, Any] | None = None
    identical_to_live: int | None = None

    @property
    def ref(self) -> str:
        """``model@version``."""
        return f"{self.model}@{self.version}"

    @property
    def passed(self) -> bool:
        """Whether the candidate may go live."""
        return self.status == PASS

    def result(self, check: str) -> CheckResult:
        """The result of the check named ``check``; KeyError listing the checks run."""
        for result in self.results:
            if result.check == check:
                return result
        raise NotFoundError(
            f"verdict {self.ref} has no result for check {check!r}; it ran "
            f"{', '.join(r.check for r in self.results) or 'no checks'}"
        )

    @property
    def failures(self) -> list[CheckResult]:
        """The checks that failed."""
        return [r for r in self.results if r.status == FAIL]

    @property
    def codes(self) -> set[str]:
        """The codes of every finding of every failed check."""
        return {code for r in self.failures for code in r.codes}

    @property
    def warnings(self) -> list[Finding]:
        """Warnings of every check: things to look at that do not stop the candidate (a
        world that moved under both models, say)."""
        return [w for r in self.results for w in r.warnings]

    def headline(self) -> str:
        """One sentence: the model, the status, and the comparison that decided it, with its
        effect and interval (each check's reason carries those); a pass also names its first
        warning."""
        same = (f" [artifact identical to live v{self.identical_to_live}]"
                if self.identical_to_live is not None else "")
        warned = self.warnings
        warning = (f" (warning: {warned[0].message}"
                   f"{f' +{len(warned) - 1} more' if len(warned) > 1 else ''})"
                   if warned else "")
        if self.status == PASS:
            ran = [r for r in self.results if r.status == PASS]
            key = next((r for r in ran if r.check == "shadow_accuracy"), ran[0] if ran else None)
            detail = f": {key.check}: {key.reason}" if key else ""
            return (f"{self.ref} passed the sentinel ({len(ran)} checks passed){same}{detail}"
                    f"{warning}")
        deciding = [r for r in self.results if r.status == self.status] or self.results
        first = deciding[0] if deciding else None
        word = "FAILED" if self.status == FAIL else "has NOT ENOUGH DATA"
        detail = f": {first.check}: {first.reason}" if first else ""
        more = len(deciding) - 1
        tail = f" (+{more} more check{'s' if more > 1 else ''})" if more > 0 else ""
        return f"{self.ref} {word}{same}{detail}{tail}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "model": self.model,
            "version": self.version,
            "status": self.status,
            "headline": self.headline(),
            "checked_at": self.checked_at.astimezone(UTC).isoformat(),
            "duration_s": round(self.duration_s, 6),
            "artifact_sha256": self.artifact_sha256,
            "live_version": self.live_version,
            "anchor_version": self.anchor_version,
            "decision": self.decision,
            "paths": dict(self.paths),
            "shadow_window": _clean(self.shadow_window),
            "identical_to_live": self.identical_to_live,
            "config": _clean(self.config),
            "results": [r.to_dict() for r in self.results],
        }

    def to_json(self, indent: int | None = 2) -> str:
        """The verdict as JSON text."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Verdict:
        """The inverse of ``to_dict``."""
        return cls(
            model=data["model"],
            version=int(data["version"]),
            status=_status(data["status"]),
            results=[CheckResult.from_dict(r) for r in data.get("results", [])],
            checked_at=datetime.fromisoformat(data["checked_at"]),
            duration_s=float(data.get("duration_s", 0.0)),
            artifact_sha256=data.get("artifact_sha256"),
            live_version=data.get("live_version"),
            anchor_version=data.get("anchor_version"),
            config=dict(data.get("config", {})),
            decision=data.get("decision"),
            paths=dict(data.get("paths", {})),
            shadow_window=data.get("shadow_window"),
            identical_to_live=data.get("identical_to_live"),
        )

    @classmethod
    def from_json(cls, text: str) -> Verdict:
        """Parse ``to_json`` output."""
        return cls.from_dict(json.loads(text))


def overall_status(
    results: Iterable[CheckResult], allow_not_enough_data: Iterable[str] = ()
) -> Status:
    """``fail`` if any failed; else ``not_enough_data`` if any lacked data and is not allowed
    to; else ``pass``."""
    allowed = set(allow_not_enough_data)
    listed = list(results)
    if any(r.status == FAIL for r in listed):
        return FAIL
    if any(r.status == NOT_ENOUGH_DATA and r.check not in allowed for r in listed):
        return NOT_ENOUGH_DATA
    return PASS


def _status(value: object) -> Status:
    for status in STATUSES:
        if value == status:
            return status
    raise InputError(f"{value!r} is not a check status; expected one of {', '.join(STATUSES)}")


def _clean(value: Any) -> Any:
    """Make ``value`` strict JSON: numpy scalars to Python, NaN and inf to None, tuples to lists."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return _clean(value.tolist())
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return str(value)
