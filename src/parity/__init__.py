"""parity: one definition of every feature and model, executed identically offline and online."""

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
    DefinitionError,
    InputError,
    NotFoundError,
    ParityError,
    SchemaError,
    TimeError,
    TransientError,
    WorkspaceError,
)
from parity.factlog import FactLog, IngestReport
from parity.workspace import Workspace, init, open

__version__ = "0.1.0"

__all__ = [
    "Aggregate",
    "DefinitionError",
    "Entity",
    "EventSource",
    "FactLog",
    "FeatureSet",
    "IngestReport",
    "InputError",
    "Lookup",
    "NotFoundError",
    "ParityError",
    "SchemaError",
    "StateSource",
    "TimeError",
    "Transform",
    "TransientError",
    "Workspace",
    "WorkspaceError",
    "__version__",
    "init",
    "open",
    "transform",
]
