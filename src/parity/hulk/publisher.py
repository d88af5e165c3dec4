"""The write path: stream outputs into a new version, validate it, swap it in, keep N, GC.

    publisher = Publisher(store, keep=3, rows_per_second=50_000)
    report = publisher.publish("churn_scores", table, key_columns=["customer_id"])
    report.status        # "live" (validated and swapped) or "rejected" (readers never saw it)
    publisher.rollback("churn_scores")

Nothing a reader can see changes until the one compare-and-set ``swap`` at the end; a
rejected or crashed publication leaves the live version as it was.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Union

import pandas as pd
import pyarrow as pa

from parity.errors import (
    ConfigError,
    InputError,
    NotFoundError,
    NothingToRollBackError,
    SchemaError,
    StateError,
)
from parity.hulk.alerts import AlertChannel, publication_verdict, send_alert
from parity.hulk.fallback import Fallback
from parity.hulk.manifest import Manifest, SummaryBuilder, now_iso
from parity.hulk.ratelimit import RateLimiter
from parity.hulk.stores.base import PublicationStore, Row
from parity.hulk.validation import CheckOutcome, ValidationPolicy, ValidationReport, validate
from parity.hulk.values import encode_value, key_string, normalize_output

OUTPUT = "output"
STALE_WRITING = timedelta(days=1)  # an unfinished version older than this is abandoned
Data = Union[pa.Table, pa.RecordBatch, pd.DataFrame, Iterable[Union[pa.Table, pa.RecordBatch]]]  # noqa: UP007


@dataclass
class PublishReport:
    """What ``publish`` did: the version, whether it went live, and why not."""

    name: str
    version: int
    status: str
    validation: ValidationReport
    manifest: Manifest
    alert_errors: list[str] = field(default_factory=list)

    @property
    def live(self) -> bool:
        """True when this version is now the one readers get."""
        return self.status == "live"

    def headline(self) -> str:
        """One line a person can act on."""
        s = self.manifest.summary
        if self.live:
            return (f"{self.name} v{self.version} is live: {s.rows:,} outputs, "
                    f"{self.validation.headline()}")
        return (f"{self.name} v{self.version} was stopped before the swap (live stays "
                f"v{self.validation.compared_with}): {self.validation.headline()}")


class Publisher:
    """Publishes versions of publications to a ``PublicationStore``.

    ``keep``: how many versions that have been live are kept (the live one included) as
    rollback targets. ``rows_per_second``: pace of bulk writes (None: unlimited).
    ``alerts``: the Sentinel's ``Alerter`` (or anything with its ``send``), told when a
    version is stopped or rolled back.
    """

    def __init__(self, store: PublicationStore, *, policy: ValidationPolicy | None = None,
                 keep: int = 3, rows_per_second: float | None = None, write_batch: int = 5_000,
                 alerts: AlertChannel | None = None) -> None:
        if keep < 2:
            raise ConfigError(f"keep={keep}: keep at least 2 versions (the live one and a "
                              f"rollback target)")
        if write_batch < 1:
            raise ConfigError(f"write_batch={write_batch} must be at least 1")
        self.store = store
        self.policy = policy or ValidationPolicy()
        self.keep = keep
        self.rows_per_second = rows_per_second
        self.write_batch = write_batch
        self.alerts = alerts

    # -- publish ----------------------------------------------------------------------------

    def publish(self, name: str, data: Data, *, key_columns: Sequence[str],
                output: str = OUTPUT, fallback: Fallback | None = None,
                lineage: Mapping[str, Any] | None = None, policy: ValidationPolicy | None = None,
                progress: Callable[[int], None] | None = None) -> PublishReport:
        """Write ``data`` (key columns + ``output``; a table or an iterable of batches) as a
        new version of ``name``, validate it against the live version, and swap it in only if
        every check passes. ``progress`` is called with the rows written after each batch."""
        _check_name(name)
        if not key_columns:
            raise InputError("key_columns is empty; name the entity key column(s), e.g. "
                             "key_columns=['customer_id']")
        started = time.perf_counter()
        version = self.store.allocate_version(name)
        manifest = Manifest(name=name, version=version, key_columns=list(key_columns),
                            status="writing", created_at=now_iso(),
                            fallback=(fallback or Fallback.none()).to_dict(),
                            lineage=dict(lineage or {}))
        self.store.put_manifest(name, version, manifest.to_json())
        builder = SummaryBuilder()
        limiter = RateLimiter(self.rows_per_second, burst=self.write_batch)
        pending: list[Row] = []
        written = 0
        try:
            for batch in _batches(data):
                _check_columns(batch, key_columns, output)
                if not manifest.key_types:
                    manifest.key_types = {c: _key_type(batch.schema.field(c).type)
                                          for c in key_columns}
                keys = batch.select(list(key_columns)).to_pylist()
                for row, value in zip(keys, batch.column(output).to_pylist()):
                    key = key_string(row, key_columns)
                    normalized = normalize_output(value)
                    stored = encode_value(normalized)
                    builder.add(key, normalized, stored)
                    pending.append((key, stored))
                    if len(pending) >= self.write_batch:
                        written += self._flush(name, version, pending, limiter)
                written += self._flush(name, version, pending, limiter)
                if progress:
                    progress(written)
        except BaseException as exc:
            # Readers never saw this version; mark it so the next GC drops its rows.
            self._set_status(manifest, "rejected", "failed",
                             reason=f"{type(exc).__name__}: {exc}")
            raise
        manifest.summary = builder.finish()
        wrote = time.perf_counter()
        live = self.store.live_version(name)
        previous = self.manifest(name, live) if live is not None else None
        report = validate(manifest, builder.keys, previous,
                          self.store.iter_keys(name, live) if live is not None else None,
                          policy or self.policy)
        outcomes = [_stored_check(self.store.count_rows(name, version), len(builder.keys)),
                    *report.outcomes]
        report = ValidationReport(outcomes, report.compared_with)
        manifest.validation = report.to_dict()
        manifest.timings = {"write_s": wrote - started, "validate_s": time.perf_counter() - wrote,
                            "rate_limit_wait_s": limiter.waited}
        manifest.previous = live
        alert_errors: list[str] = []
        if report.passed:
            # The manifest is final before the pointer moves: a reader that sees the new
            # version at once must find its fallback, its previous version and its history.
            manifest.status = "live"
            manifest.note("swapped", previous=live)
            self.store.put_manifest(name, version, manifest.to_json())
            swap_started = time.perf_counter()
            if self.store.swap(name, live, version):
                manifest.timings["swap_s"] = time.perf_counter() - swap_started
                if previous is not None:
                    self._set_status(previous, "retired", "replaced", by=version)
            else:
                manifest.history.pop()
                report = ValidationReport([*outcomes, CheckOutcome(
                    "swap", "fail", "another publication moved the live version meanwhile; "
                    "publish again")], live)
                manifest.validation = report.to_dict()
        if not report.passed:
            manifest.status = "rejected"
            manifest.note("rejected", reason=report.headline())
            verdict = publication_verdict(
                name, version, "publication_validation",
                [(f"publication_validation.{o.check}", o.reason) for o in report.failures],
                live, {"validation": report.to_dict()})
            alert_errors = send_alert(self.alerts, verdict, "stopped")
        self.store.put_manifest(name, version, manifest.to_json())
        self.gc(name)
        return PublishReport(name, version, manifest.status, report, manifest, alert_errors)

    def _flush(self, name: str, version: int, pending: list[Row], limiter: RateLimiter) -> int:
        if not pending:
            return 0
        limiter.acquire(len(pending))
        self.store.write_rows(name, version, pending)
        count = len(pending)
        pending.clear()
        return count

    # -- rollback and GC --------------------------------------------------------------------

    def rollback(self, name: str, to: int | None = None, *, reason: str = "",
                 expected: int | None = None) -> int:
        """Point ``name`` back at ``to`` (default: the newest older version that was live);
        the version it leaves is marked ``rolled_back``. With ``expected``, only if that
        version is still live (a shadow monitor must not undo a newer publication). Returns
        the version now live."""
        current = self.store.live_version(name)
        if current is None:
            raise NothingToRollBackError(f"publication {name!r} has no live version to roll "
                                         f"back")
        if expected is not None and current != expected:
            return current
        if to is None:
            candidates = [m.version for m in self.manifests(name)
                          if m.version < current and m.status == "retired"]
            if not candidates:
                raise NothingToRollBackError(
                    f"publication {name!r} v{current} has no earlier version that was live and "
                    f"is still kept; publish a fixed version instead")
            to = max(candidates)
        target = self.manifest(name, to)
        if target.status in ("writing", "rejected"):
            raise StateError(f"publication {name!r} v{to} is {target.status}; only a version "
                             f"that passed validation can be rolled back to")
        if not self.store.swap(name, current, to):
            raise StateError(f"publication {name!r}: the live version moved during the "
                             f"rollback; look at `parity publications show {name}` and retry")
        self._set_status(self.manifest(name, current), "rolled_back", "rolled back",
                         to=to, reason=reason)
        self._set_status(target, "live", "restored", replacing=current, reason=reason)
        return to

    def gc(self, name: str) -> list[int]:
        """Drop versions no one needs: beyond the ``keep`` newest that have been live, every
        rejected or rolled-back one but the newest, and unfinished ones older than a day.
        Returns the dropped versions."""
        live = self.store.live_version(name)
        manifests = self.manifests(name)
        kept_live = [m.version for m in manifests if m.status in ("live", "retired")]
        keep = set(sorted(kept_live)[-self.keep :]) | ({live} if live is not None else set())
        failed = [m.version for m in manifests if m.status in ("rejected", "rolled_back")]
        keep |= set(sorted(failed)[-1:])
        cutoff = datetime.fromisoformat(now_iso()) - STALE_WRITING
        keep |= {m.version for m in manifests if m.status == "writing"
                 and datetime.fromisoformat(m.created_at) > cutoff}
        dropped = []
        for m in manifests:
            if m.version not in keep:
                self.store.drop_version(name, m.version)
                dropped.append(m.version)
        return dropped

    # -- reading manifests ------------------------------------------------------------------

    def manifest(self, name: str, version: int) -> Manifest:
        """The manifest of ``name`` version ``version``."""
        text = self.store.get_manifest(name, version)
        if text is None:
            known = self.store.versions(name)
            if not known:
                raise NotFoundError(f"no publication {name!r}; known: "
                                    f"{', '.join(self.store.names()) or '(none)'}")
            raise NotFoundError(f"publication {name!r} has no version {version}; kept: "
                                f"{', '.join(map(str, known))}")
        return Manifest.from_json(text)

    def manifests(self, name: str) -> list[Manifest]:
        """Every kept version's manifest, oldest first."""
        out = []
        for version in self.store.versions(name):
            text = self.store.get_manifest(name, version)
            if text is not None:
                out.append(Manifest.from_json(text))
        return out

    def _set_status(self, manifest: Manifest, status: Any, event: str, **detail: Any) -> None:
        manifest.status = status
        manifest.note(event, **detail)
        self.store.put_manifest(manifest.name, manifest.version, manifest.to_json())


def _batches(data: Data) -> Iterator[pa.Table]:
    if isinstance(data, pa.Table):
        yield data
    elif isinstance(data, pa.RecordBatch):
        yield pa.Table.from_batches([data])
    elif isinstance(data, pd.DataFrame):
        yield pa.Table.from_pandas(data, preserve_index=False)
    else:
        for item in data:
            yield item if isinstance(item, pa.Table) else pa.Table.from_batches([item])


def _check_columns(batch: pa.Table, key_columns: Sequence[str], output: str) -> None:
    missing = [c for c in [*key_columns, output] if c not in batch.column_names]
    if missing:
        raise SchemaError(f"publication data lacks column(s) {', '.join(missing)}; it has "
                          f"{', '.join(batch.column_names)} (keys {list(key_columns)}, "
                          f"output column {output!r})")


def _key_type(kind: pa.DataType) -> str:
    if pa.types.is_integer(kind):
        return "int"
    if pa.types.is_floating(kind):
        return "int"  # keys from float columns (12347.0) are stored as whole numbers
    return "str"


def _stored_check(stored: int, distinct: int) -> CheckOutcome:
    evidence = {"stored": stored, "distinct_keys_written": distinct}
    if stored != distinct:
        return CheckOutcome("stored", "fail", f"the store holds {stored:,} keys for this "
                            f"version but {distinct:,} were written", evidence)
    return CheckOutcome("stored", "pass", f"{stored:,} keys stored", evidence)


def _check_name(name: str) -> None:
    if not name or not all(c.isalnum() or c in "_-." for c in name):
        raise InputError(f"publication name {name!r}: use letters, digits, '_', '-' or '.'")
