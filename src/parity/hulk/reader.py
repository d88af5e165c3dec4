"""The read path: ``lookup`` one key or many, from one version, with fallbacks and shadowing.

Every batch is read with ``read_live``: the pointer and the values in one atomic step, so all
keys of one call come from one version. Keys the version lacks get the publication's declared
fallback, reported per key (``fallback``) and counted per reason.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from parity.errors import NotFoundError, NotReadyError, ParityError
from parity.hulk import metrics
from parity.hulk.alerts import AlertChannel, publication_verdict, send_alert
from parity.hulk.fallback import Computer, parse_key
from parity.hulk.manifest import Manifest
from parity.hulk.shadow import ShadowMonitor, ShadowPolicy, disagrees
from parity.hulk.stores.base import PublicationStore
from parity.hulk.values import decode_value, key_string, normalize_output
from parity.timeutil import UTC

LOGGER = logging.getLogger("parity.hulk")
#: reads of the live version before a missing manifest is an error (see ``lookup_many``)
_RETRIES = 5
Rollback = Callable[[str, int, str], int]
"""``rollback(name, expected_version, reason) -> version now live``."""


@dataclass(frozen=True)
class LookupResult:
    """One key's answer: ``found`` in ``version``, or a ``fallback`` reason
    (``default``, ``previous``, ``compute``; ``none`` when nothing answered)."""

    key: str
    value: Any
    version: int
    found: bool
    fallback: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"key": self.key, "value": self.value, "version": self.version,
                "found": self.found, "fallback": self.fallback}


class PublicationReader:
    """Looks keys up in live publications.

    ``computers`` maps a publication name to the ``Computer`` (e.g. ``OnDemand``) its
    ``compute`` fallback uses. ``shadow`` (None: off) shadows newly swapped versions;
    ``rollback`` is called when one disagrees too much, and ``alerts`` hears about it.
    """

    def __init__(self, store: PublicationStore, *, computers: Mapping[str, Computer] | None = None,
                 shadow: ShadowPolicy | None = None, rollback: Rollback | None = None,
                 alerts: AlertChannel | None = None) -> None:
        self.store = store
        self.computers = dict(computers or {})
        self.shadow_policy = shadow
        self.rollback = rollback
        self.alerts = alerts
        self.counts: Counter[tuple[str, str]] = Counter()
        self._manifests: dict[tuple[str, int], Manifest] = {}
        self._key_columns: dict[str, list[str]] = {}
        self._monitors: dict[tuple[str, int], ShadowMonitor | None] = {}
        self._lock = threading.Lock()

    def lookup(self, name: str, key: Any) -> LookupResult:
        """The live output of ``key`` (a value, a tuple, or a dict of key columns)."""
        return self.lookup_many(name, [key])[0]

    def lookup_many(self, name: str, keys: Sequence[Any]) -> list[LookupResult]:
        """The live outputs of ``keys``, in order, all from one version."""
        skeys = [key_string(k, self.key_columns(name)) for k in keys]
        # The rows come from one snapshot of the store, the manifest from a later read: a
        # publication swapped and collected in between (keep=N) leaves a version without a
        # manifest. That version was already superseded, so read the new live one.
        for attempt in range(_RETRIES):
            live, raws = self.store.read_live(name, skeys)
            if live is None:
                self._no_live(name)
            assert live is not None
            version = live
            found_manifest = self._cached_manifest(name, version)
            if found_manifest is not None or attempt == _RETRIES - 1:
                break
        manifest = found_manifest or self._manifest(name, version)  # raises if still missing
        values = [decode_value(r) for r in raws]
        found = [r is not None for r in raws]
        fallbacks: list[str | None] = [None] * len(skeys)
        missing = [i for i, f in enumerate(found) if not f]
        if missing:
            self._fallback(manifest, skeys, missing, values, fallbacks)
        hits = len(skeys) - len(missing)
        self._count(name, "found", hits)
        for reason in set(f for f in fallbacks if f):
            self._count(name, f"fallback:{reason}", fallbacks.count(reason))
            metrics.count(metrics.FALLBACKS, fallbacks.count(reason), publication=name,
                          reason=reason)
        metrics.count(metrics.LOOKUPS, hits, publication=name, outcome="found")
        metrics.count(metrics.LOOKUPS, len(missing), publication=name, outcome="missing")
        monitor = self._monitor(manifest)
        if monitor is not None:
            self._shadow(monitor, skeys, values, found)
        return [LookupResult(k, v, version, f, fb)
                for k, v, f, fb in zip(skeys, values, found, fallbacks)]

    def key_columns(self, name: str) -> list[str]:
        """The key columns of ``name`` (the schema check keeps them fixed across versions)."""
        columns = self._key_columns.get(name)
        if columns is None:
            live = self.store.live_version(name)
            if live is None:
                self._no_live(name)
            assert live is not None
            columns = self._key_columns[name] = self._manifest(name, live).key_columns
        return columns

    def stats(self) -> dict[str, dict[str, int]]:
        """Counts per publication: ``found`` and ``fallback:<reason>``."""
        out: dict[str, dict[str, int]] = {}
        for (name, what), n in self.counts.items():
            out.setdefault(name, {})[what] = n
        return out

    def shadow_state(self, name: str) -> dict[str, Any] | None:
        """The shadow monitor of ``name``'s latest shadowed version in this process."""
        found = [m for (n, _), m in self._monitors.items() if n == name and m is not None]
        return max(found, key=lambda m: m.version).to_dict() if found else None

    # -- internals --------------------------------------------------------------------------

    def _no_live(self, name: str) -> None:
        if not self.store.versions(name):
            raise NotFoundError(f"no publication {name!r}; published: "
                                f"{', '.join(self.store.names()) or '(none)'}")
        raise NotReadyError(f"publication {name!r} has no live version yet (every version so "
                            f"far was stopped); see `parity publications show {name}`")

    def _manifest(self, name: str, version: int) -> Manifest:
        manifest = self._cached_manifest(name, version)
        if manifest is None:
            raise NotFoundError(f"publication {name!r} v{version} has no manifest")
        return manifest

    def _cached_manifest(self, name: str, version: int) -> Manifest | None:
        cached = self._manifests.get((name, version))
        if cached is None:
            text = self.store.get_manifest(name, version)
            if text is None:
                return None
            cached = self._manifests[(name, version)] = Manifest.from_json(text)
        return cached

    def _fallback(self, manifest: Manifest, skeys: list[str], missing: list[int],
                  values: list[Any], fallbacks: list[str | None]) -> None:
        kind = manifest.fallback.get("kind", "none")
        answered: dict[int, Any] = {}
        if kind == "default":
            answered = {i: manifest.fallback.get("value") for i in missing}
        elif kind == "previous" and manifest.previous is not None:
            raws = self.store.read_rows(manifest.name, manifest.previous,
                                        [skeys[i] for i in missing])
            answered = {i: decode_value(r) for i, r in zip(missing, raws) if r is not None}
        elif kind == "compute":
            computer = self.computers.get(manifest.name)
            if computer is None:
                LOGGER.warning("publication %s declares a compute fallback but this reader "
                               "has no computer for it", manifest.name)
            else:
                rows = [parse_key(skeys[i], manifest.key_columns, manifest.key_types)
                        for i in missing]
                try:
                    answered = dict(zip(missing, computer.compute(rows)))
                except ParityError as exc:  # a failed compute is a gap, not a failed lookup
                    LOGGER.warning("publication %s: on-demand compute failed: %s",
                                   manifest.name, exc)
        for i in missing:
            if i in answered:
                values[i] = normalize_output(answered[i])
                fallbacks[i] = kind
            else:
                fallbacks[i] = "none"

    def _count(self, name: str, what: str, amount: int) -> None:
        if amount:
            with self._lock:
                self.counts[(name, what)] += amount

    def _monitor(self, manifest: Manifest) -> ShadowMonitor | None:
        ident = (manifest.name, manifest.version)
        if ident in self._monitors:
            return self._monitors[ident]
        monitor = None
        policy = self.shadow_policy
        last = manifest.history[-1] if manifest.history else {}
        if policy is not None and manifest.previous is not None and last.get("event") == (
                "swapped"):
            age = (datetime.now(UTC) - datetime.fromisoformat(last["at"])).total_seconds()
            if age <= policy.max_age_s:
                monitor = ShadowMonitor(manifest.name, manifest.version, manifest.previous,
                                        policy)
        with self._lock:
            return self._monitors.setdefault(ident, monitor)

    def _shadow(self, monitor: ShadowMonitor, skeys: list[str], values: list[Any],
                found: list[bool]) -> None:
        picked = monitor.sample(len(skeys))
        if not picked:
            return
        old = self.store.read_rows(monitor.name, monitor.previous, [skeys[i] for i in picked])
        compared = disagreed = 0
        for i, raw in zip(picked, old):
            if raw is None:
                continue  # the previous version lacked the key: nothing to compare
            compared += 1
            disagreed += disagrees(values[i] if found[i] else None, decode_value(raw),
                                   monitor.policy)
        metrics.count(metrics.SHADOW, compared - disagreed, publication=monitor.name,
                      result="agree")
        metrics.count(metrics.SHADOW, disagreed, publication=monitor.name, result="disagree")
        transition = monitor.record(compared, disagreed)
        if transition == "rolled_back":
            self._roll_back(monitor)

    def _roll_back(self, monitor: ShadowMonitor) -> None:
        reason = (f"shadow: {monitor.disagreements} of {monitor.samples} sampled lookups "
                  f"disagree with v{monitor.previous} (rate {monitor.rate:.1%}, lower bound "
                  f"{monitor.low_bound():.1%} above {monitor.policy.max_disagreement:.1%})")
        LOGGER.warning("publication %s v%s rolled back: %s", monitor.name, monitor.version,
                       reason)
        if self.rollback is not None:
            self.rollback(monitor.name, monitor.version, reason)
        verdict = publication_verdict(monitor.name, monitor.version, "publication_shadow",
                                      [("publication_shadow.disagreement", reason)],
                                      monitor.previous, {"shadow": monitor.to_dict()})
        send_alert(self.alerts, verdict, "stopped")
