"""The exception tree: every error parity raises on purpose is defined here and only here.

    ParityError                         every error parity raises on purpose
    ├── TerminalError                   retrying the same call gives the same error
    │   ├── DefinitionError             a definition is wrong (caught when it is made)
    │   ├── InputError                  data handed to parity is wrong (ingest, contexts, requests)
    │   │   ├── RequestError            an HTTP request field is wrong (names field, value, fix)
    │   │   ├── SchemaError             a column is missing, mistyped, or null where it may not be
    │   │   ├── TimeError               a timestamp is naive, unparseable or out of order
    │   │   ├── InvalidModelError       the object handed over as a model has no ``predict``
    │   │   └── InputTypeError          a value has a type parity cannot take (also a TypeError)
    │   ├── ConfigError                 a parameter or a parity.yaml value is out of range
    │   │   ├── WorkspaceError          parity.yaml or the workspace folder is wrong
    │   │   └── FeatureLogConfigError   a FeatureLogWriter parameter is out of range
    │   ├── NotFoundError               a named thing (source, feature set, model) does not exist
    │   │   └── ArtifactNotFoundError   no artifact is stored under a sha256
    │   ├── NotReadyError               the online path cannot answer truthfully yet
    │   ├── NotImplementedYetError      a documented capability that is not built yet
    │   ├── StateError                  the call does not fit the current state
    │   │   ├── WriterClosedError       ``log()`` after ``close()``
    │   │   ├── LogLockedError          another writer holds the feature log
    │   │   ├── NothingToRollBackError  an alias that never moved cannot roll back
    │   │   └── NotServingError         a model is known but no version is loaded
    │   ├── SkewError                   a model would see features unlike its training
    │   ├── TransformError              a transform raised or returned a wrong type
    │   ├── IntegrityError              stored bytes are not what was written or signed
    │   │   ├── ArtifactIntegrityError  an artifact's bytes do not match its sha256 or signature
    │   │   └── CorruptSegmentError     a sealed feature-log segment fails its checks
    │   ├── ModelSerializationError     a model could not be saved or loaded
    │   ├── ScoringError                a model raised while scoring (also a RuntimeError)
    │   └── StorageError                a disk or permission fault (full disk, read-only, EACCES)
    └── TransientError                  a service did not answer, or was busy; retrying may help
        └── ConcurrentChangeError       files kept changing under a read; reading again may succeed

Terminal errors are the caller's to fix (the message says how); transient errors are worth a retry
with backoff. Each backend maps its driver's exceptions to this tree in one place (its
``errors``/``translate`` helper), so no driver exception crosses a layer boundary.

Every message has a one-line headline that says what failed, followed where useful by why
and what to do next.
"""

from __future__ import annotations

from pathlib import Path


class ParityError(Exception):
    """Base class of every error parity raises on purpose."""

    #: True when retrying the same call may succeed.
    transient: bool = False


class TerminalError(ParityError):
    """Retrying the same call gives the same error; the message says what to change."""


class TransientError(ParityError):
    """A service did not answer in time, refused a connection or was busy; a retry may succeed."""

    transient = True


class DefinitionError(TerminalError, ValueError):
    """A definition (entity, source, feature, feature set) is invalid."""


class InputError(TerminalError, ValueError):
    """Data handed to parity cannot be accepted as it is."""


class SchemaError(InputError):
    """A column is missing, has the wrong type, or holds a null where none is allowed."""


class TimeError(InputError):
    """A timestamp is naive, unparseable, or otherwise breaks the time rules."""


class InvalidModelError(InputError):
    """The object handed over as a model does not follow the ``Model`` protocol."""


class ConfigError(TerminalError, ValueError):
    """A parameter or configuration value is out of range or of the wrong type."""


class WorkspaceError(ConfigError):
    """The workspace configuration or folder is invalid."""


class FeatureLogConfigError(ConfigError):
    """A FeatureLogWriter parameter is out of range."""


class NotFoundError(TerminalError, KeyError):
    """A named object does not exist."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


class ArtifactNotFoundError(NotFoundError):
    """No artifact is stored under the requested sha256."""


class NotReadyError(TerminalError):
    """The online path cannot answer truthfully yet (a source not materialized, a store behind)."""


class NotImplementedYetError(TerminalError, NotImplementedError):
    """A documented capability that is not built yet (for example ``engine: spark``)."""


class StateError(TerminalError):
    """The call does not fit the object's current state."""


class WriterClosedError(StateError):
    """``log()`` was called after ``close()``."""


class LogLockedError(StateError):
    """Another process or writer already writes to this feature log."""


class NothingToRollBackError(StateError):
    """An alias cannot be rolled back: it never moved, or it had no version before."""


class NotServingError(StateError):
    """The model is known but no version of it could be loaded yet."""


class SkewError(TerminalError):
    """A model would be served with features whose definitions differ from its training."""


class TransformError(TerminalError):
    """A transform raised, or returned a value of the wrong type."""


class IntegrityError(TerminalError):
    """Stored bytes are not what was written (or signed)."""


class ArtifactIntegrityError(IntegrityError):
    """A stored artifact's bytes no longer match the sha256 (or signature) it was stored under."""

    def __init__(
        self, message: str, *, expected: str = "", actual: str = "", path: Path | None = None
    ) -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual
        self.path = path


class CorruptSegmentError(IntegrityError):
    """A sealed (closed) feature-log segment holds a frame that fails its checks."""


class ModelSerializationError(TerminalError):
    """A model could not be serialised, or an artifact could not be deserialised."""


class StorageError(TerminalError, OSError):
    """A disk or permission fault: a full disk, a read-only folder, a file that cannot be read."""


class RequestError(InputError):
    """A field of a request to the HTTP service is invalid; it names the field, value and fix."""

    def __init__(self, field: str, value: object, problem: str, fix: str) -> None:
        # Slice before repr: the value may be megabytes long.
        if isinstance(value, int) and value.bit_length() > 128:
            shown = f"an integer of {value.bit_length()} bits"
        else:
            shown = repr(value[:100] if isinstance(value, (str, bytes)) else value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(f"{field}: {problem} (got {shown}); {fix}")
        self.field = field
        self.value = shown
        self.problem = problem
        self.fix = fix


class InputTypeError(InputError, TypeError):
    """A value handed to parity has a type it cannot take (a naive datetime, an object).

    Also a ``TypeError`` so callers (and the JSON encoder's contract) that catch ``TypeError``
    keep working.
    """


class ScoringError(TerminalError, RuntimeError):
    """A model raised, or returned unusable outputs, while the sentinel scored it.

    Also a ``RuntimeError``: the sentinel's checks catch it to report a failed prediction.
    """


class ConcurrentChangeError(TransientError):
    """Files kept changing while they were read (a compaction ran); reading again may succeed."""
