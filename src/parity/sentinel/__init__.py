"""The Sentinel: validate a candidate model and its data next to the live system.

    from parity.sentinel import Sentinel, WorkspaceInputs

    sentinel = Sentinel(ws.registry, WorkspaceInputs(ws), config=ws.config.get("sentinel"))
    verdict = sentinel.check("churn", 4)
    verdict.status            # "pass", "fail" or "not_enough_data"
    verdict.headline()        # one line a person can act on
    sentinel.watch("churn")   # promote each passing `candidate` to `live`, alert on a fail

Modules: ``verdict`` (results and verdicts, JSON), ``config`` (thresholds per model),
``stats`` (bootstrap, PSI, KS, chi-squared), ``calibration_stats`` (ECE), ``isolation``
(artifact in a child process), ``context`` (the checks' plain inputs), ``window`` (shadow
rows after training), ``checks`` (one module per check), ``inputs`` (where the inputs come
from), ``gate`` (check, watch, promote, rollback), ``protocols`` (what the gate needs from
the registry), ``alerts``, ``store``, ``report`` (self-contained HTML). See docs/sentinel.md.
"""

from parity.sentinel.alerts import Alerter, Hook, alert_payload
from parity.sentinel.checks import Check, get_check, register_check, registered_checks, run_check
from parity.sentinel.config import (
    CHECK_NAMES,
    ArtifactConfig,
    CalibrationConfig,
    ContractConfig,
    DependentDataConfig,
    DriftConfig,
    LabelsConfig,
    LatencyConfig,
    SegmentsConfig,
    SentinelConfig,
    ShadowConfig,
    config_for,
)
from parity.sentinel.context import ArtifactRef, CheckContext
from parity.sentinel.gate import Sentinel
from parity.sentinel.inputs import SentinelInputs, ShadowRows, StaticInputs, WorkspaceInputs
from parity.sentinel.isolation import IsolatedLoad, IsolatedRun
from parity.sentinel.report import render_html
from parity.sentinel.store import VerdictStore
from parity.sentinel.verdict import (
    FAIL,
    NOT_ENOUGH_DATA,
    PASS,
    SKIPPED,
    CheckResult,
    Finding,
    Status,
    Verdict,
)

__all__ = [
    "CHECK_NAMES",
    "FAIL",
    "NOT_ENOUGH_DATA",
    "PASS",
    "SKIPPED",
    "Alerter",
    "ArtifactConfig",
    "ArtifactRef",
    "CalibrationConfig",
    "Check",
    "CheckContext",
    "CheckResult",
    "ContractConfig",
    "DependentDataConfig",
    "DriftConfig",
    "Finding",
    "Hook",
    "IsolatedLoad",
    "IsolatedRun",
    "LabelsConfig",
    "LatencyConfig",
    "SegmentsConfig",
    "Sentinel",
    "SentinelConfig",
    "SentinelInputs",
    "ShadowConfig",
    "ShadowRows",
    "StaticInputs",
    "Status",
    "Verdict",
    "VerdictStore",
    "WorkspaceInputs",
    "alert_payload",
    "config_for",
    "get_check",
    "register_check",
    "registered_checks",
    "render_html",
    "run_check",
]
