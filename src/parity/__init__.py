"""parity: one definition of every feature and model, executed identically offline and online."""

from parity import listagg
from parity.definitions import (
    Aggregate,
    Entity,
    EventSource,
    FeatureSet,
    Lookup,
    StateSource,
    Transform,
    transform,
)
from parity.errors import (
    ConfigError,
    DefinitionError,
    InputError,
    NotFoundError,
    NotReadyError,
    ParityError,
    SchemaError,
    StorageError,
    TimeError,
    TransientError,
    WorkspaceError,
)
from parity.factlog import FactLog, IngestReport, SourceSummary
from parity.frames import to_arrow_table
from parity.snapshot.live import LiveSource
from parity.workspace import Workspace, init, open

__version__ = "0.1.0"

__all__ = [
    "Aggregate",
    "ConfigError",
    "DefinitionError",
    "Entity",
    "EventSource",
    "FactLog",
    "FeatureSet",
    "IngestReport",
    "InputError",
    "LiveSource",
    "Lookup",
    "NotFoundError",
    "NotReadyError",
    "ParityError",
    "SchemaError",
    "SourceSummary",
    "StateSource",
    "StorageError",
    "TimeError",
    "Transform",
    "TransientError",
    "Workspace",
    "WorkspaceError",
    "__version__",
    "init",
    "listagg",
    "open",
    "to_arrow_table",
    "transform",
]
