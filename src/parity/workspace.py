"""The workspace: the composition root. ``parity.yaml`` names the backends; ``open`` wires them.

A workspace folder looks like::

    parity.yaml        configuration (see ``DEFAULT_CONFIG``)
    features.py        definitions: entities, sources and feature sets (any name, set in yaml)
    data/facts/        the fact log
    data/online.db     the SQLite online store (when ``online: sqlite``)
    data/registry.db   the SQLite registry (when ``registry: sqlite``)
    data/artifacts/    model artifacts by sha256
    data/feature_log/  the feature log (Lumberjack)

Library code never reads environment variables or global state: everything comes from here.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import yaml

from parity.definitions import Entity, FeatureSet, Source
from parity.engines import Engine, get_engine
from parity.engines.base import Progress
from parity.errors import NotFoundError, WorkspaceError
from parity.factlog import FactLog, IngestReport
from parity.facts import FactData, RecordedAtPolicy

if TYPE_CHECKING:  # the registry and the online path are imported only when first used
    from parity.online import OnlineFeatures
    from parity.registry import Registry

CONFIG_FILE = "parity.yaml"
DEFAULT_CONFIG: dict[str, Any] = {
    "definitions": "features.py",
    "engine": "duckdb",
    "offline": {"memory_limit": "4GB"},
    "online": "sqlite",
    "registry": "sqlite",
}
_KNOWN_KEYS = {
    "name",
    "definitions",
    "engine",
    "offline",
    "online",
    "registry",
    "serving",
    "feature_log",
    "sentinel",
    "publications",
    "archive",
}


@dataclass
class Definitions:
    """Everything a definitions module declares, found by type."""

    entities: dict[str, Entity] = field(default_factory=dict)
    sources: dict[str, Source] = field(default_factory=dict)
    feature_sets: dict[str, FeatureSet] = field(default_factory=dict)

    @classmethod
    def from_module(cls, namespace: dict[str, Any]) -> Definitions:
        """Collect entities, sources and feature sets from a module's globals."""
        out = cls()
        for value in namespace.values():
            if isinstance(value, Entity):
                out.entities[value.name] = value
            elif isinstance(value, Source):
                out.sources[value.name] = value
            elif isinstance(value, FeatureSet):
                out.feature_sets[value.name] = value
                for src in value.sources:
                    out.sources.setdefault(src.name, src)
        return out

    def source(self, name: str) -> Source:
        """The source called ``name``; NotFoundError listing the known ones otherwise."""
        if name not in self.sources:
            known = ", ".join(self.sources) or "(none)"
            raise NotFoundError(f"no source {name!r}; the definitions declare: {known}")
        return self.sources[name]

    def feature_set(self, name: str | FeatureSet) -> FeatureSet:
        """The feature set called ``name`` (a FeatureSet passes through)."""
        if isinstance(name, FeatureSet):
            return name
        if name not in self.feature_sets:
            raise NotFoundError(
                f"no feature set {name!r}; the definitions declare: "
                f"{', '.join(self.feature_sets) or '(none)'}"
            )
        return self.feature_sets[name]


class Workspace:
    """A parity project on disk: configuration, definitions and the backends they name."""

    def __init__(self, root: Path, config: dict[str, Any]) -> None:
        self.root = root
        self.config = config
        self.data_dir = root / "data"
        self.fact_log = FactLog(self.data_dir / "facts")

    @cached_property
    def definitions(self) -> Definitions:
        """The definitions module named in ``parity.yaml``, imported once."""
        path = self.root / str(self.config["definitions"])
        if not path.exists():
            raise WorkspaceError(
                f"definitions file {str(path)!r} does not exist; create it or point "
                f"'definitions:' in {self.root / CONFIG_FILE} at your file"
            )
        module_name = f"parity_definitions_{abs(hash(str(path)))}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
        return Definitions.from_module(vars(module))

    @cached_property
    def engine(self) -> Engine:
        """The offline engine named by ``engine:`` with the options under ``offline:``."""
        name = str(self.config["engine"])
        offline = self.config.get("offline") or {}
        if not isinstance(offline, Mapping):
            raise WorkspaceError(
                f"{self.root / CONFIG_FILE}: 'offline:' must be a mapping of engine options, "
                f"e.g. offline: {{memory_limit: 4GB}}; got {offline!r}"
            )
        options = dict(offline)
        _check_engine_options(name, options, self.root / CONFIG_FILE)
        if name == "duckdb":
            options.setdefault("temp_directory", str(self.data_dir / "tmp"))
        return get_engine(name, **options)

    def ingest(
        self,
        source: str | Source,
        data: FactData,
        recorded_at: RecordedAtPolicy = "lag",
        rename: dict[str, str] | None = None,
        *,
        drop: Sequence[str] = (),
        drop_extra: bool = False,
        tz: str | None = None,
    ) -> IngestReport:
        """Append facts to the fact log (see ``FactLog.ingest``)."""
        src = source if isinstance(source, Source) else self.definitions.source(source)
        return self.fact_log.ingest(
            src, data, recorded_at=recorded_at, rename=rename, drop=drop, drop_extra=drop_extra,
            tz=tz,
        )

    def training_set(
        self,
        contexts: FactData,
        feature_sets: Sequence[str | FeatureSet] | str | FeatureSet,
        knowledge_cutoff: datetime | None = None,
        progress: Progress | None = None,
    ) -> pa.Table:
        """Point-in-time features for ``contexts`` (see ``Engine.training_set``)."""
        if isinstance(feature_sets, (str, FeatureSet)):
            feature_sets = [feature_sets]
        resolved = [self.definitions.feature_set(fs) for fs in feature_sets]
        return self.engine.training_set(
            contexts, resolved, self.fact_log, knowledge_cutoff=knowledge_cutoff, progress=progress
        )

    def backend_url(self, key: str, default_file: str) -> str:
        """The URL of a backend: 'sqlite' means the workspace's own SQLite file."""
        value = str(self.config.get(key) or "sqlite")
        if value == "sqlite":
            return f"sqlite:///{self.data_dir / default_file}"
        return value

    @cached_property
    def registry(self) -> Registry:
        """The model registry (SQLite in the workspace, or the PostgreSQL URL configured)."""
        import os

        from parity.registry import registry_from_config

        self.data_dir.mkdir(parents=True, exist_ok=True)
        # The composition root reads the environment for the registry (its key_env setting).
        return registry_from_config(self.config.get("registry"), self.data_dir,
                                    environ=os.environ)

    @cached_property
    def online(self) -> OnlineFeatures:
        """Online features over the configured store ('memory', 'sqlite' or a redis:// URL)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return self.open_online()

    @cached_property
    def online_reader(self) -> OnlineFeatures:
        """The online store opened read-only, for pure reads (``parity get``, ``parity sources``).

        Nothing on disk is created or changed; a write through it raises StorageError.
        """
        return self.open_online(read_only=True)

    def open_online(self, read_only: bool = False) -> OnlineFeatures:
        """A new OnlineFeatures over ``online:`` (a word, URL or mapping; see docs/online.md).

        ``read_only=True`` for pure reads (``parity get``): nothing on disk is created or changed.
        """
        from parity.online import open_configured

        return open_configured(
            self.config.get("online"),
            self.data_dir / "online.db",
            self.fact_log,
            list(self.definitions.feature_sets.values()),
            read_only=read_only,
        )

    @property
    def feature_log_dir(self) -> Path:
        """Where the feature log (Lumberjack) writes its segments and Parquet files."""
        return self.data_dir / "feature_log"


def _check_engine_options(engine: str, options: Mapping[str, Any], where: Path) -> None:
    """Refuse an ``offline:`` option the engine does not take, naming it and the known ones."""
    if engine != "duckdb":
        return  # get_engine refuses unknown and unbuilt engines itself
    from parity.engines.duckdb import DuckDBEngine

    known = [n for n in inspect.signature(DuckDBEngine.__init__).parameters if n != "self"]
    unknown = sorted(str(k) for k in options if k not in known)
    if unknown:
        raise WorkspaceError(
            f"{where}: unknown offline setting(s) {', '.join(unknown)} for engine: {engine}; "
            f"known: {', '.join(known)}"
        )


def open(path: str | Path = ".") -> Workspace:
    """Open the workspace at ``path`` (a folder holding ``parity.yaml``)."""
    root = Path(path).resolve()
    config_path = root / CONFIG_FILE
    if not config_path.exists():
        raise WorkspaceError(
            f"no {CONFIG_FILE} in {root}; create a workspace there with `parity init {path}`"
        )
    try:
        loaded = yaml.safe_load(config_path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise WorkspaceError(f"{config_path} is not valid YAML: {exc}") from None
    if not isinstance(loaded, dict):
        raise WorkspaceError(f"{config_path} must be a mapping of settings")
    unknown = set(loaded) - _KNOWN_KEYS
    if unknown:
        raise WorkspaceError(
            f"{config_path}: unknown setting(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(_KNOWN_KEYS))}"
        )
    return Workspace(root, {**DEFAULT_CONFIG, **loaded})


def init(path: str | Path, name: str | None = None, force: bool = False) -> Path:
    """Create a workspace folder with a commented ``parity.yaml`` and a starter definitions file."""
    root = Path(path).resolve()
    config_path = root / CONFIG_FILE
    if config_path.exists() and not force:
        raise WorkspaceError(
            f"{config_path} already exists; overwrite it with `parity init --force {path}`"
        )
    root.mkdir(parents=True, exist_ok=True)
    config_path.write_text(STARTER_CONFIG.format(name=name or root.name))
    definitions = root / "features.py"
    if not definitions.exists():
        definitions.write_text(STARTER_DEFINITIONS)
    return root


STARTER_CONFIG = """\
# parity workspace. Every setting has an embedded default; change one line to go real.
name: {name}
definitions: features.py      # the Python file that declares entities, sources, feature sets
engine: duckdb                # offline engine: duckdb (embedded) or spark
offline:
  memory_limit: 4GB           # DuckDB spills to data/tmp beyond this
online: sqlite                # online store: memory, sqlite, or redis://127.0.0.1:6379/0
registry: sqlite              # model registry: sqlite, or postgresql://user@host:5432/db
"""

STARTER_DEFINITIONS = '''\
"""Definitions: what features mean. Engines and the online path all read this one file."""

import parity as pt

customer = pt.Entity("customer", keys={"customer_id": int})

purchases = pt.EventSource(
    "purchases",
    entity=customer,
    schema={"amount": float, "item": str},
    lag="1h",  # a history load marks facts known one hour after they happened
)

profiles = pt.StateSource("profiles", entity=customer, schema={"country": str})


@pt.transform(dtype="float")
def avg_order_30d(spend_30d, orders_30d):
    return spend_30d / orders_30d if orders_30d else None


customer_features = pt.FeatureSet(
    "customer_features",
    entity=customer,
    features=[
        pt.Aggregate("spend_30d", purchases, "sum", "amount", window="30d"),
        pt.Aggregate("orders_30d", purchases, "count", window="30d"),
        pt.Aggregate("distinct_items_90d", purchases, "count_distinct", "item", window="90d"),
        pt.Lookup("country", profiles, "country"),
        avg_order_30d,
    ],
)
'''
