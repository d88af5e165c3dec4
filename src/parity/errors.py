"""The exception tree.

    ParityError                    every error parity raises on purpose
    ├── DefinitionError            a definition is wrong (caught when it is made)
    ├── InputError                 data handed to parity is wrong (ingest, contexts)
    │   ├── SchemaError            a column is missing, mistyped, or null where it may not be
    │   └── TimeError              a timestamp is naive, unparseable or out of order
    ├── WorkspaceError             parity.yaml or the workspace folder is wrong
    ├── NotFoundError              a named thing (source, feature set, model) does not exist
    └── TransientError             a service did not answer; retrying may help

Every message has a one-line headline that says what failed, followed where useful by why
and what to do next.
"""

from __future__ import annotations


class ParityError(Exception):
    """Base class of every error parity raises on purpose."""


class DefinitionError(ParityError, ValueError):
    """A definition (entity, source, feature, feature set) is invalid."""


class InputError(ParityError, ValueError):
    """Data handed to parity cannot be accepted as it is."""


class SchemaError(InputError):
    """A column is missing, has the wrong type, or holds a null where none is allowed."""


class TimeError(InputError):
    """A timestamp is naive, unparseable, or otherwise breaks the time rules."""


class WorkspaceError(ParityError):
    """The workspace configuration or folder is invalid."""


class NotFoundError(ParityError, KeyError):
    """A named object does not exist."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


class TransientError(ParityError):
    """A service did not answer in time or refused a connection; retrying may succeed."""
