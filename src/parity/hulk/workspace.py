"""Wiring Hulk to a workspace: where publications live, lineage, and ``publish`` in one call.

Publications live in ``publications:`` of parity.yaml when set (a store URL), else in the
online store's Redis when ``online:`` is a Redis URL, else in ``data/publications.db``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from parity.errors import InputError
from parity.hulk.fallback import Fallback, OnDemand
from parity.hulk.precompute import Precompute
from parity.hulk.publications import Publications
from parity.hulk.publisher import PublishReport
from parity.hulk.stores import open_publication_store
from parity.hulk.validation import ValidationPolicy
from parity.timeutil import us_to_datetime


def publications_url(ws: Any) -> str:
    """The store URL for ``ws`` (see the module docstring)."""
    configured = ws.config.get("publications")
    if configured:
        return str(configured)
    online = str(ws.config.get("online") or "")
    if urlsplit(online).scheme in ("redis", "rediss"):
        return online
    return f"sqlite:///{ws.data_dir / 'publications.db'}"


def open_publications(ws: Any, url: str | None = None, **options: Any) -> Publications:
    """``Publications`` over the workspace's store; publications whose fallback is
    ``compute`` and whose lineage names a registered model get an on-demand computer that
    loads that model and reads the online features (lazily, on the first gap)."""
    pubs = Publications(open_publication_store(url or publications_url(ws)), **options)
    for name in pubs.names():
        if pubs.live_version(name) is None:
            continue
        manifest = pubs.manifest(name)
        model = manifest.lineage.get("model")
        if manifest.fallback.get("kind") == "compute" and model:
            pubs.add_computer(name, RegistryComputer(ws, model["name"], model["version"],
                                                     list(manifest.lineage.get(
                                                         "feature_sets", {}))))
    return pubs


class RegistryComputer:
    """An ``OnDemand`` over a registered model version, loaded on first use."""

    def __init__(self, ws: Any, model: str, version: int, feature_sets: Sequence[str]) -> None:
        self.ws = ws
        self.model = model
        self.version = version
        self.feature_sets = list(feature_sets)
        self._inner: OnDemand | None = None

    def compute(self, keys: Sequence[Mapping[str, Any]]) -> list[Any]:
        """See ``Computer``."""
        if self._inner is None:
            fn = self.ws.registry.load(self.model, self.version)
            sets = [self.ws.definitions.feature_set(f) for f in self.feature_sets]
            self._inner = OnDemand(fn, self.ws.online, sets)
        return self._inner.compute(keys)


def resolve_model(ws: Any, ref: str) -> tuple[Any, dict[str, Any]]:
    """Load ``name@version`` or ``name@alias`` from the registry: the model and its lineage."""
    name, _, which = ref.partition("@")
    if not name or not which:
        raise InputError(f"model {ref!r}: give name@version or name@alias, e.g. churn@3 or "
                         f"churn@live")
    version = ws.registry.get(name, int(which) if which.isdigit() else which)
    lineage = {"name": version.name, "version": version.version,
               "artifact_sha256": version.artifact_sha256,
               "feature_sets": dict(version.feature_sets),
               "code_version": version.code_version}
    return ws.registry.load_version(version), lineage


def lineage(ws: Any, job: Precompute, model: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What produced a publication: model version, feature set versions, fact log state
    (files, rows, latest ``recorded_at`` per source), code version and the moment."""
    from parity.registry.codeversion import code_version

    facts: dict[str, Any] = {}
    for source in ws.fact_log.sources():
        files = ws.fact_log.files(source)
        latest = max((f.max_recorded_at for f in files), default=None)
        facts[source] = {"files": len(files), "rows": sum(f.rows for f in files),
                         "max_recorded_at": us_to_datetime(latest).isoformat()
                         if latest is not None else None}
    code = code_version(ws.root)
    return {
        "at": job.at.isoformat(),
        "model": dict(model) if model else None,
        "feature_sets": {fs.name: fs.version for fs in job.resolve_feature_sets(ws)},
        "fact_log": facts,
        "code_version": {"commit": code.commit, "dirty": code.dirty} if code else None,
        "keys": {"source": job.keys.source, "query": job.keys.query,
                 "table": job.keys.table is not None},
    }


def publish(ws: Any, job: Precompute, *, fallback: Fallback | None = None,
            model: Mapping[str, Any] | None = None, publications: Publications | None = None,
            policy: ValidationPolicy | None = None, show_progress: bool = True,
            console: Console | None = None) -> PublishReport:
    """Run ``job`` and publish its outputs as a new version, validated before the swap, with
    its lineage in the manifest. ``model`` is the registry lineage of ``job.fn`` (see
    ``resolve_model``). A rich progress bar shows keys computed when ``show_progress``."""
    pubs = publications or open_publications(ws)
    key_columns = job.resolved_key_columns(ws)
    record = lineage(ws, job, model)
    if not show_progress:
        return pubs.publish(job.name, job.batches(ws), key_columns=key_columns,
                            fallback=fallback, lineage=record, policy=policy)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console or Console(stderr=True),
                  transient=True) as bar:
        task = bar.add_task(f"precompute {job.name}", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return pubs.publish(job.name, job.batches(ws, advance), key_columns=key_columns,
                            fallback=fallback, lineage=record, policy=policy)
