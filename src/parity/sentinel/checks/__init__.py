"""The checks: each one a small object with a ``name`` and ``run(ctx) -> CheckResult``.

Built-in checks are registered under their names; ``register_check`` adds your own, which
``checks:`` in ``parity.yaml`` can then name. A check must not raise: ``run_check`` turns an
unexpected exception into a failed result with code ``<check>.error``, so one broken check
cannot take the sentinel down.

A check may also define ``prepare(ctx)``, called for every check before any runs (the
artifact check starts its child process there), and set ``needs_candidate = True`` when it
scores the candidate (the gate runs those after the artifact check, once the candidate is
loaded).
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

from parity.errors import DefinitionError
from parity.sentinel.context import CheckContext
from parity.sentinel.verdict import PASS, CheckResult, Finding


@runtime_checkable
class Check(Protocol):
    """One validation of a candidate. ``run`` returns a result and never raises."""

    name: str

    def run(self, ctx: CheckContext) -> CheckResult:
        """Judge the candidate described by ``ctx``."""
        ...


_REGISTRY: dict[str, Check] = {}
_BUILTINS: list[Check] = []


def register_check(check: Check, *, replace: bool = False) -> Check:
    """Make ``check`` available by its name (``checks: [...]`` in ``parity.yaml``)."""
    if not isinstance(check, Check):
        raise DefinitionError(f"{check!r} is not a check: it needs a name and run(ctx)")
    if check.name in _REGISTRY and not replace:
        raise DefinitionError(
            f"a check named {check.name!r} is already registered; pass replace=True to swap it"
        )
    _REGISTRY[check.name] = check
    return check


def registered_checks() -> dict[str, Check]:
    """Every registered check by name (built-ins first)."""
    _load_builtins()
    return dict(_REGISTRY)


def get_check(name: str) -> Check:
    """The check registered as ``name``; DefinitionError listing the known ones."""
    checks = registered_checks()
    if name not in checks:
        raise DefinitionError(f"no check named {name!r}; known: {', '.join(checks)}")
    return checks[name]


def run_check(check: Check, ctx: CheckContext) -> CheckResult:
    """Run ``check``, timing it and turning an unexpected exception into a failure."""
    started = time.perf_counter()
    try:
        result = check.run(ctx)
    except Exception as err:  # a check bug must not stop the others; it still blocks promotion
        result = CheckResult.failed(
            check.name,
            [Finding(f"{check.name}.error",
                     f"the check itself raised {type(err).__name__}: {err}")],
        )
    result.duration_s = time.perf_counter() - started
    ctx.results[check.name] = result
    return result


def candidate_missing(name: str, ctx: CheckContext) -> CheckResult | None:
    """A skipped result when the candidate could not be loaded, else None."""
    if ctx.candidate is not None:
        return None
    artifact = ctx.results.get("artifact")
    if artifact is not None and artifact.status != PASS:
        why = "the artifact check did not pass, so the model was not loaded"
    else:
        why = "no candidate predictor was loaded"
    return CheckResult.skipped(name, why)


def _load_builtins() -> None:
    if _BUILTINS:
        return
    from parity.sentinel.checks.artifact import ArtifactCheck
    from parity.sentinel.checks.calibration import CalibrationCheck
    from parity.sentinel.checks.contract import ContractCheck
    from parity.sentinel.checks.data import DependentDataCheck
    from parity.sentinel.checks.drift import DriftCheck
    from parity.sentinel.checks.latency import LatencyCheck
    from parity.sentinel.checks.segments import SegmentsCheck
    from parity.sentinel.checks.shadow import ShadowAccuracyCheck

    _BUILTINS[:] = [
        ArtifactCheck(),
        ContractCheck(),
        DependentDataCheck(),
        ShadowAccuracyCheck(),
        SegmentsCheck(),
        DriftCheck(),
        CalibrationCheck(),
        LatencyCheck(),
    ]
    builtins = {check.name: check for check in _BUILTINS}
    custom = dict(_REGISTRY)
    _REGISTRY.clear()
    _REGISTRY.update({**builtins, **custom})


__all__ = [
    "Check",
    "candidate_missing",
    "get_check",
    "register_check",
    "registered_checks",
    "run_check",
]
