"""Where the gate gets the checks' inputs: a small interface, a static version and the workspace.

``SentinelInputs`` is what the gate asks for; ``StaticInputs`` holds plain values (tests, or
code that already has its tables); ``WorkspaceInputs`` reads a workspace:

- feature sets: the workspace definitions (what serving computes);
- online types: the features of the feature sets the online store serves (its
  ``feature_sets`` when it exposes them, else every defined set), plus request fields;
- freshness: ``online.freshness(sources)`` when the online store offers it; else a source
  the online store does not keep (not in ``online.sources``) has no data, and a kept one is
  as fresh as the newest ``recorded_at`` in its fact log manifest
  (``fact_log.files(source)[i].max_recorded_at``): online pushes are flushed to the fact log
  and the store is materialised from it;
- shadow rows: the feature log (``feature_log_dir``) joined with the label source's facts by
  ``training_set_from_log``, restricted to the model, the last ``shadow_accuracy.window``
  and the newest ``shadow_accuracy.max_rows`` rows;
- traffic: the same feature log rows without labels (drift and latency need none);
- training rows: the file named by the version's ``training_set`` lineage (``path``,
  ``file`` or ``source``: Parquet or CSV, relative to the workspace root); the gate reads
  them for the candidate and for live to set the shadow window (see ``window``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from parity.definitions import FeatureSet
from parity.sentinel.config import SentinelConfig
from parity.timeutil import us_to_datetime

# Column prefixes of the feature log's flat table (docs/feature-log.md).
KEY_PREFIX, REQUEST_PREFIX, FEATURE_PREFIX = "key.", "request.", "feature."


@dataclass
class ShadowRows:
    """Recent labelled traffic, or None with the reason why there is none.

    ``traffic`` is recent traffic whether labelled or not (features, keys and ``at``): drift
    and latency need no labels, so a missing label source does not hide the traffic from them.
    """

    table: pa.Table | None
    label: str = "label"
    note: str | None = None
    request_fields: list[str] = field(default_factory=list)
    traffic: pa.Table | None = None

    def __post_init__(self) -> None:
        if self.traffic is None:
            self.traffic = self.table


class SentinelInputs(Protocol):
    """What the gate needs besides the registry. Every method may answer None (unknown)."""

    def feature_sets(self) -> Mapping[str, FeatureSet] | None:
        """The current feature set definitions, by name."""
        ...

    def online_types(self, shadow: ShadowRows) -> Mapping[str, str] | None:
        """Name -> dtype of every feature and request field available online."""
        ...

    def sources(self, feature_sets: Mapping[str, str]) -> list[str]:
        """The sources the model's feature sets read."""
        ...

    def freshness(self, sources: Sequence[str]) -> Mapping[str, datetime | None]:
        """The newest ``recorded_at`` held online per source (None: no data)."""
        ...

    def shadow_rows(self, model: str, config: SentinelConfig, now: datetime,
                    feature_sets: Mapping[str, str]) -> ShadowRows:
        """Recent labelled traffic of ``model``."""
        ...

    def training_rows(self, training_set: Mapping[str, Any] | None) -> pa.Table | None:
        """The training rows named by a version's ``training_set`` lineage."""
        ...

    def requirements(self, needs: Sequence[str]) -> Mapping[str, bool]:
        """Whether each file or folder in ``needs`` exists."""
        ...


@dataclass
class StaticInputs:
    """Plain values handed to the gate (in tests, or from code that has them at hand)."""

    definitions: Mapping[str, FeatureSet] | None = None
    types: Mapping[str, str] | None = None
    fresh: Mapping[str, datetime | None] = field(default_factory=dict)
    shadow: pa.Table | None = None
    label: str = "label"
    training: pa.Table | None = None
    present: Mapping[str, bool] = field(default_factory=dict)
    training_sets: Mapping[str, pa.Table] = field(default_factory=dict)

    def feature_sets(self) -> Mapping[str, FeatureSet] | None:
        """See ``SentinelInputs``."""
        return self.definitions

    def online_types(self, shadow: ShadowRows) -> Mapping[str, str] | None:
        """See ``SentinelInputs``; derived from ``definitions`` when ``types`` is not given."""
        if self.types is not None:
            return self.types
        return None if self.definitions is None else served_types(self.definitions.values())

    def sources(self, feature_sets: Mapping[str, str]) -> list[str]:
        """See ``SentinelInputs``."""
        return sources_of(self.definitions or {}, feature_sets)

    def freshness(self, sources: Sequence[str]) -> Mapping[str, datetime | None]:
        """See ``SentinelInputs``."""
        return {s: self.fresh.get(s) for s in sources}

    def shadow_rows(self, model: str, config: SentinelConfig, now: datetime,
                    feature_sets: Mapping[str, str]) -> ShadowRows:
        """See ``SentinelInputs``."""
        return ShadowRows(self.shadow, self.label, None if self.shadow is not None
                          else "no shadow rows were given")

    def training_rows(self, training_set: Mapping[str, Any] | None) -> pa.Table | None:
        """See ``SentinelInputs``: ``training_sets[lineage path]``, else ``training`` for a
        version with any lineage, else None (a version registered without lineage)."""
        if training_set is None:
            return None
        path = training_set.get("path")
        if isinstance(path, str) and path in self.training_sets:
            return self.training_sets[path]
        return self.training

    def requirements(self, needs: Sequence[str]) -> Mapping[str, bool]:
        """See ``SentinelInputs``."""
        return {n: bool(self.present.get(n, False)) for n in needs}


class WorkspaceInputs:
    """The inputs of a workspace (see the module docstring for where each comes from)."""

    def __init__(self, workspace: Any) -> None:
        self.workspace = workspace

    def feature_sets(self) -> Mapping[str, FeatureSet] | None:
        """See ``SentinelInputs``."""
        return dict(self.workspace.definitions.feature_sets)

    def online_types(self, shadow: ShadowRows) -> Mapping[str, str] | None:
        """See ``SentinelInputs``."""
        served = _served_feature_sets(self.workspace)
        types = dict(served_types(served))
        for name in shadow.request_fields:
            types.setdefault(name, "any")
        return types

    def sources(self, feature_sets: Mapping[str, str]) -> list[str]:
        """See ``SentinelInputs``."""
        return sources_of(self.workspace.definitions.feature_sets, feature_sets)

    def freshness(self, sources: Sequence[str]) -> Mapping[str, datetime | None]:
        """See ``SentinelInputs``."""
        online = _online_or_none(self.workspace)
        ask = getattr(online, "freshness", None)
        if callable(ask):
            return dict(ask(list(sources)))
        served = getattr(online, "sources", None)
        out: dict[str, datetime | None] = {}
        for source in sources:
            if isinstance(served, Mapping) and source not in served:
                out[source] = None  # the online store does not keep this source at all
                continue
            files = self.workspace.fact_log.files(source)
            out[source] = us_to_datetime(max(f.max_recorded_at for f in files)) if files else None
        return out

    def shadow_rows(self, model: str, config: SentinelConfig, now: datetime,
                    feature_sets: Mapping[str, str]) -> ShadowRows:
        """See ``SentinelInputs``."""
        from parity.featurelog import read_log, training_set_from_log

        labels = config.labels
        folder = Path(self.workspace.feature_log_dir)
        if not folder.exists():
            return ShadowRows(None, labels.name, f"no feature log at {folder} yet")
        log = read_log(folder)
        if "model" in log.column_names:
            log = log.filter(pc.equal(log.column("model"), model))
        request_fields = [c[len(REQUEST_PREFIX):] for c in log.column_names
                          if c.startswith(REQUEST_PREFIX)]
        if log.num_rows == 0:
            return ShadowRows(None, labels.name, f"the feature log has no predictions of "
                              f"{model!r}", request_fields)
        traffic = _recent(_unlabelled(log), config, now)
        if labels.source is None:
            return ShadowRows(None, labels.name, "no label source configured: set sentinel "
                              f"{model}.labels.source in parity.yaml to the source whose facts "
                              "are the outcomes (the feature log holds "
                              f"{log.num_rows} predictions of {model!r})", request_fields,
                              traffic=traffic)
        definitions = self.workspace.definitions
        source = definitions.source(labels.source)
        keys = list(labels.keys or entity_keys(definitions.feature_sets, feature_sets)
                    or source.entity.key_names)
        facts = self.workspace.fact_log.read(source)
        if facts.num_rows == 0:
            return ShadowRows(None, labels.name, f"label source {labels.source!r} has no facts",
                              request_fields, traffic=traffic)
        table = training_set_from_log(
            log, facts, keys=keys, label_window=timedelta(seconds=labels.window),
            label_name=labels.name, how=labels.how, model=model,
        )
        table = _recent(table, config, now)
        note = None if table.num_rows else (
            f"none of the {log.num_rows} logged predictions of {model!r} has a known label yet "
            f"(label window {labels.window / 86_400:g} days after each prediction)")
        return ShadowRows(table, labels.name, note, request_fields, traffic=traffic)

    def training_rows(self, training_set: Mapping[str, Any] | None) -> pa.Table | None:
        """See ``SentinelInputs``."""
        for key in ("path", "file", "source"):
            value = (training_set or {}).get(key)
            if isinstance(value, str):
                path = self._path(value)
                if path.exists():
                    return read_rows(path)
        return None

    def requirements(self, needs: Sequence[str]) -> Mapping[str, bool]:
        """See ``SentinelInputs``."""
        return {n: self._path(n).exists() for n in needs}

    def _path(self, value: str) -> Path:
        path = Path(value)
        return path if path.is_absolute() else Path(self.workspace.root) / path


def _recent(table: pa.Table, config: SentinelConfig, now: datetime) -> pa.Table:
    """The rows of the last ``shadow_accuracy.window``, at most ``max_rows`` (the newest)."""
    window = config.shadow_accuracy.window
    if window is not None and table.num_rows:
        since = pa.scalar(now - timedelta(seconds=window), table.schema.field("at").type)
        table = table.filter(pc.greater_equal(table.column("at"), since))
    limit = config.shadow_accuracy.max_rows
    return table.slice(table.num_rows - limit) if table.num_rows > limit else table


def _unlabelled(log: pa.Table) -> pa.Table:
    """The feature log as traffic: keys, ``at``, request fields and features, plain names."""
    columns: dict[str, Any] = {}
    for prefix in (KEY_PREFIX, REQUEST_PREFIX, FEATURE_PREFIX):
        for name in log.column_names:
            if name.startswith(prefix) and name[len(prefix):] not in columns:
                columns[name[len(prefix):]] = log.column(name)
    columns["at"] = log.column("logged_at")
    return pa.table(columns).sort_by("at")


def served_types(feature_sets: Any) -> dict[str, str]:
    """Name -> dtype of the features, and request fields (``"any"``), of ``feature_sets``."""
    types: dict[str, str] = {}
    for fs in feature_sets:
        for feature in fs.features:
            types[feature.name] = feature.dtype
        for name in fs.request_fields:
            types.setdefault(name, "any")
    return types


def sources_of(definitions: Mapping[str, FeatureSet], feature_sets: Mapping[str, str]) -> list[str]:
    """The sources read by the named feature sets (those that exist), in first-use order."""
    names: dict[str, None] = {}
    for fs_name in feature_sets:
        fs = definitions.get(fs_name)
        if fs is not None:
            names.update((s.name, None) for s in fs.sources)
    return list(names)


def read_rows(path: Path) -> pa.Table:
    """A Parquet file or folder, or a CSV file, as an Arrow table."""
    if path.suffix.lower() == ".csv":
        import pyarrow.csv as pacsv

        return pacsv.read_csv(path)
    import pyarrow.parquet as pq

    return pq.read_table(path)


def _online_or_none(workspace: Any) -> Any:
    try:
        return workspace.online
    except Exception:  # no online store configured or not importable yet: use the fact log
        return None


def _served_feature_sets(workspace: Any) -> list[FeatureSet]:
    online = _online_or_none(workspace)
    served = getattr(online, "feature_sets", None)
    if isinstance(served, Mapping):
        return list(served.values())
    if isinstance(served, (list, tuple)):
        return list(served)
    return list(workspace.definitions.feature_sets.values())


def entity_keys(definitions: Mapping[str, FeatureSet],
                feature_sets: Mapping[str, str]) -> list[str]:
    """The entity key columns of the first of ``feature_sets`` that is defined ([] if none)."""
    for name in feature_sets:
        fs = definitions.get(name)
        if fs is not None:
            return fs.entity.key_names
    return []
