"""The model registry: immutable model versions with lineage, and aliases that move atomically.

    from parity.registry import open_registry

    registry = open_registry("sqlite:///abs/path/registry.db", "/abs/path/artifacts")
    mv = registry.register("churn", model, feature_sets=[member_features], metrics={"auc": 0.81})
    registry.set_alias("churn", "live", mv.version, reason="beats v1 offline")
    model = registry.load("churn", "live")

See docs/registry.md.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from parity.errors import WorkspaceError
from parity.registry.artifacts import (
    Artifact,
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    ArtifactStore,
)
from parity.registry.base import (
    AliasEvent,
    ModelVersion,
    NothingToRollBackError,
    Ref,
    Registry,
)
from parity.registry.codeversion import CodeVersion, code_version
from parity.registry.model import (
    InvalidModelError,
    Model,
    ModelSerializationError,
    ProbabilisticModel,
)
from parity.registry.postgres import PostgresRegistry
from parity.registry.sqlite import SqliteRegistry

__all__ = [
    "AliasEvent",
    "Artifact",
    "ArtifactIntegrityError",
    "ArtifactNotFoundError",
    "ArtifactStore",
    "CodeVersion",
    "InvalidModelError",
    "Model",
    "ModelSerializationError",
    "ModelVersion",
    "NothingToRollBackError",
    "PostgresRegistry",
    "ProbabilisticModel",
    "Ref",
    "Registry",
    "SqliteRegistry",
    "code_version",
    "open_registry",
]


def open_registry(url: str, artifacts_root: str | Path) -> Registry:
    """Open (creating if needed) the registry whose metadata lives at ``url``.

    ``url`` is ``sqlite:///abs/path/registry.db`` (the path after ``sqlite://`` must be
    absolute) or a PostgreSQL URL ``postgresql://user@host:5432/db``; for PostgreSQL an extra
    ``?schema=name`` query parameter picks the schema holding the tables (default ``parity``).
    Artifacts are stored under ``artifacts_root`` in both cases.
    """
    if not isinstance(url, str):
        raise WorkspaceError(f"registry URL must be a string, not {type(url).__name__}")
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "sqlite":
        path = url[len("sqlite://") :]
        if not path.startswith("/"):
            raise WorkspaceError(
                f"registry URL {url!r} has a relative path; write an absolute one, e.g. "
                f"sqlite:///home/me/project/registry.db"
            )
        # sqlite:////abs/path (SQLAlchemy's spelling of an absolute path) means the same file.
        return SqliteRegistry("/" + path.lstrip("/"), artifacts_root)
    if scheme in ("postgresql", "postgres"):
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        schemas = [value for key, value in query if key == "schema"]
        rest = urlencode([(key, value) for key, value in query if key != "schema"])
        plain_url = urlunsplit(parts._replace(query=rest))
        schema = schemas[-1] if schemas else "parity"
        return PostgresRegistry(plain_url, artifacts_root, schema=schema)
    raise WorkspaceError(
        f"registry URL {url!r} is not supported: use sqlite:///abs/path/registry.db "
        f"(embedded) or postgresql://user@host:5432/dbname (server)"
    )
