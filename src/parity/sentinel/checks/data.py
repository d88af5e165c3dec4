"""Dependent data: the sources the model reads hold fresh data, and what it needs is there.

Freshness of a source is the age of the newest fact the online side holds for it: ``now``
minus its latest ``recorded_at``. Each source has a limit (``dependent_data.max_age``, else
``default_max_age``). A source with no data at all fails as missing. ``requires`` adds
sources (by name) and files or folders (anything with a ``/``) that must exist.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from parity.sentinel.context import CheckContext
from parity.sentinel.verdict import CheckResult, Finding
from parity.timeutil import UTC


class DependentDataCheck:
    """Freshness per source against its limit, and presence of declared requirements."""

    name = "dependent_data"
    needs_candidate = False

    def run(self, ctx: CheckContext) -> CheckResult:
        """Judge every source and requirement; report them all."""
        config = ctx.config.dependent_data
        now = ctx.now or datetime.now(UTC)
        wanted = list(dict.fromkeys(
            [*ctx.sources, *(r for r in config.requires if "/" not in r)]
        ))
        findings: list[Finding] = []
        sources: list[dict[str, Any]] = []
        for source in wanted:
            limit = config.max_age.get(source, config.default_max_age)
            latest = ctx.freshness.get(source)
            age = None if latest is None else (now - latest).total_seconds()
            sources.append({"source": source, "latest_recorded_at": latest, "age_s": age,
                            "limit_s": limit, "fresh": age is not None and age <= limit})
            if latest is None:
                findings.append(Finding(
                    "dependent_data.missing",
                    f"source {source!r} holds no data online; load it (ingest or materialize) "
                    f"before this model serves",
                ))
            elif age is not None and age > limit:
                findings.append(Finding(
                    "dependent_data.stale",
                    f"source {source!r} is stale: its newest fact was recorded "
                    f"{_human(age)} ago ({latest.isoformat()}), the limit is {_human(limit)}; "
                    f"check the pipeline that feeds it",
                ))
        requirements = dict(ctx.requirements)
        for requirement in config.requires:
            if "/" in requirement and requirement not in requirements:
                requirements[requirement] = False  # the gate resolves paths; unresolved: absent
        for requirement, present in requirements.items():
            if not present:
                findings.append(Finding(
                    "dependent_data.requirement_missing",
                    f"the model needs {requirement!r}, which is not present",
                ))
        evidence = {"now": now, "sources": sources, "requirements": requirements}
        figures = {"freshness": [
            {"source": s["source"], "age_s": s["age_s"], "limit_s": s["limit_s"]}
            for s in sources
        ]}
        if findings:
            return CheckResult.failed(self.name, findings, evidence=evidence, figures=figures)
        if not sources and not requirements:
            return CheckResult.skipped(
                self.name, "the model declares no sources or other data it depends on",
                evidence=evidence,
            )
        return CheckResult.passed(
            self.name,
            f"{len(sources)} source(s) fresh within their limits"
            + (f", {len(requirements)} requirement(s) present" if requirements else ""),
            evidence=evidence,
            figures=figures,
        )


def _human(seconds: float) -> str:
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"
