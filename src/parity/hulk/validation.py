"""Validation before the swap: a new version is compared with the live one, and with rules
that hold on their own, before any reader can see it.

Checks (each ``pass``, ``fail`` or ``skipped`` with the numbers behind it):

- ``rows``: at least ``min_rows`` outputs;
- ``duplicates``: duplicate-key rate at most ``max_duplicate_rate`` (a key twice in a batch
  output means the key query or the join is wrong);
- ``nulls``: null-output rate at most ``max_null_rate``;
- ``schema``: same key columns and the same output kind as the live version;
- ``coverage``: keys of the live version missing from the new one at most ``max_keys_lost``
  (a fraction); gained keys are reported, never a failure;
- ``distribution``: PSI of the outputs (numeric projection, or label counts) against the live
  version's sample, failing only above ``max(psi, noise)`` where ``noise`` is the PSI two
  samples of these sizes reach by chance with probability ``alpha``
  (``parity.sentinel.stats.psi_noise_threshold``): small publications get a higher bar.

Checks against the live version are skipped for a first publication.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from parity.errors import ConfigError
from parity.hulk.manifest import Manifest, OutputSummary
from parity.sentinel.stats import binned_counts, psi, psi_noise_threshold, quantile_edges

CheckStatus = Literal["pass", "fail", "skipped"]


@dataclass(frozen=True)
class ValidationPolicy:
    """Thresholds of the checks; every one is a plain number a user can set."""

    min_rows: int = 1
    max_duplicate_rate: float = 0.0
    max_null_rate: float = 0.01
    max_keys_lost: float = 0.05
    psi: float = 0.25
    alpha: float = 0.001
    bins: int = 10

    def __post_init__(self) -> None:
        for name in ("max_duplicate_rate", "max_null_rate", "max_keys_lost", "alpha"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ConfigError(f"validation {name}={value!r} is not a fraction in [0, 1]; "
                                  f"e.g. {name}=0.05 allows 5%")
        if self.min_rows < 0 or self.bins < 2 or self.psi < 0:
            raise ConfigError(f"validation min_rows={self.min_rows}, bins={self.bins}, "
                              f"psi={self.psi}: need min_rows >= 0, bins >= 2, psi >= 0")


@dataclass(frozen=True)
class CheckOutcome:
    """One check's status, a one-line reason and its evidence."""

    check: str
    status: CheckStatus
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ValidationReport:
    """Every check of one version; ``passed`` is False if any failed."""

    outcomes: list[CheckOutcome]
    compared_with: int | None

    @property
    def passed(self) -> bool:
        """True when no check failed."""
        return all(o.status != "fail" for o in self.outcomes)

    @property
    def failures(self) -> list[CheckOutcome]:
        """The failed checks."""
        return [o for o in self.outcomes if o.status == "fail"]

    def headline(self) -> str:
        """One line: passed, or the failed checks' reasons."""
        if self.passed:
            return f"all {len(self.outcomes)} checks passed"
        return "; ".join(f"{o.check}: {o.reason}" for o in self.failures)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"passed": self.passed, "compared_with": self.compared_with,
                "outcomes": [asdict(o) for o in self.outcomes]}


def validate(new: Manifest, new_keys: set[str], previous: Manifest | None,
             previous_keys: Iterable[list[str]] | None, policy: ValidationPolicy
             ) -> ValidationReport:
    """Run every check of ``new`` (its keys ``new_keys``) against ``previous`` (the live
    version, or None for a first publication; ``previous_keys`` streams its keys)."""
    s = new.summary
    outcomes = [_rows(s, policy), _duplicates(s, policy), _nulls(s, policy)]
    if previous is None or previous_keys is None:
        outcomes += [CheckOutcome(c, "skipped", "first publication: nothing to compare with")
                     for c in ("schema", "coverage", "distribution")]
        return ValidationReport(outcomes, None)
    outcomes += [_schema(new, previous), _coverage(new_keys, previous_keys, policy),
                 _distribution(s, previous.summary, policy)]
    return ValidationReport(outcomes, previous.version)


def _rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _rows(s: OutputSummary, policy: ValidationPolicy) -> CheckOutcome:
    if s.rows < policy.min_rows:
        return CheckOutcome("rows", "fail", f"{s.rows} outputs, at least {policy.min_rows} "
                            f"required", {"rows": s.rows, "min_rows": policy.min_rows})
    return CheckOutcome("rows", "pass", f"{s.rows:,} outputs", {"rows": s.rows})


def _duplicates(s: OutputSummary, policy: ValidationPolicy) -> CheckOutcome:
    rate = _rate(s.duplicate_keys, s.rows)
    evidence = {"duplicate_keys": s.duplicate_keys, "rate": rate,
                "max_duplicate_rate": policy.max_duplicate_rate}
    if rate > policy.max_duplicate_rate:
        return CheckOutcome("duplicates", "fail", f"{s.duplicate_keys:,} duplicate keys "
                            f"({rate:.2%}, at most {policy.max_duplicate_rate:.2%} allowed); "
                            f"make the key query return each key once", evidence)
    return CheckOutcome("duplicates", "pass", f"{s.duplicate_keys} duplicate keys", evidence)


def _nulls(s: OutputSummary, policy: ValidationPolicy) -> CheckOutcome:
    rate = _rate(s.nulls, s.rows)
    evidence = {"nulls": s.nulls, "rate": rate, "max_null_rate": policy.max_null_rate}
    if rate > policy.max_null_rate:
        return CheckOutcome("nulls", "fail", f"{s.nulls:,} null outputs ({rate:.2%}, at most "
                            f"{policy.max_null_rate:.2%} allowed)", evidence)
    return CheckOutcome("nulls", "pass", f"{rate:.2%} null outputs", evidence)


def _schema(new: Manifest, previous: Manifest) -> CheckOutcome:
    evidence = {"key_columns": new.key_columns, "previous_key_columns": previous.key_columns,
                "kind": new.summary.kind, "previous_kind": previous.summary.kind}
    if new.key_columns != previous.key_columns:
        return CheckOutcome("schema", "fail", f"key columns {new.key_columns} differ from the "
                            f"live version's {previous.key_columns}; publish under a new name",
                            evidence)
    kinds = {new.summary.kind, previous.summary.kind} - {None}
    if len(kinds) > 1:
        return CheckOutcome("schema", "fail", f"outputs are {new.summary.kind} but the live "
                            f"version's are {previous.summary.kind}; readers expect one kind",
                            evidence)
    return CheckOutcome("schema", "pass", f"keyed by {', '.join(new.key_columns)}, "
                        f"{new.summary.kind} outputs", evidence)


def _coverage(new_keys: set[str], previous_keys: Iterable[list[str]],
              policy: ValidationPolicy) -> CheckOutcome:
    before = lost = 0
    examples: list[str] = []
    for batch in previous_keys:
        before += len(batch)
        for key in batch:
            if key not in new_keys:
                lost += 1
                if len(examples) < 5:
                    examples.append(key)
    gained = len(new_keys) - (before - lost)
    rate = _rate(lost, before)
    evidence = {"previous_keys": before, "new_keys": len(new_keys), "lost": lost,
                "gained": gained, "lost_rate": rate, "max_keys_lost": policy.max_keys_lost,
                "lost_examples": examples}
    if rate > policy.max_keys_lost:
        return CheckOutcome("coverage", "fail", f"{lost:,} of the live version's {before:,} "
                            f"keys are missing ({rate:.1%}, at most {policy.max_keys_lost:.1%} "
                            f"allowed), e.g. {', '.join(examples)}", evidence)
    return CheckOutcome("coverage", "pass", f"{lost:,} keys lost ({rate:.1%}), {gained:,} "
                        f"gained", evidence)


def _distribution(new: OutputSummary, old: OutputSummary,
                  policy: ValidationPolicy) -> CheckOutcome:
    if new.kind == "label" or old.kind == "label":
        labels = sorted(set(new.labels) | set(old.labels))
        expected = np.array([old.labels.get(x, 0) for x in labels], dtype=np.float64)
        actual = np.array([new.labels.get(x, 0) for x in labels], dtype=np.float64)
    else:
        a = np.asarray(old.sample, dtype=np.float64)
        b = np.asarray(new.sample, dtype=np.float64)
        edges = quantile_edges(a, policy.bins)
        expected, actual = binned_counts(a, edges), binned_counts(b, edges)
    n, m = int(expected.sum()), int(actual.sum())
    if n == 0 or m == 0:
        return CheckOutcome("distribution", "skipped", "no non-null outputs to compare",
                            {"n_previous": n, "n_new": m})
    bins_used = int(np.sum((expected + actual) > 0))
    value = psi(expected, actual)
    noise = psi_noise_threshold(n, m, bins_used, policy.alpha)
    limit = max(policy.psi, noise)
    evidence = {"psi": value, "psi_limit": limit, "psi_noise": noise, "bins": bins_used,
                "n_previous": n, "n_new": m}
    if value > limit and math.isfinite(value):
        return CheckOutcome("distribution", "fail", f"outputs shifted: PSI {value:.3f} above "
                            f"{limit:.3f} against the live version", evidence)
    return CheckOutcome("distribution", "pass", f"PSI {value:.3f} (limit {limit:.3f})",
                        evidence)
