"""The model registry: immutable model versions with lineage, and aliases that move atomically.

    from parity.registry import open_registry

    registry = open_registry("sqlite:///abs/path/registry.db", "/abs/path/artifacts")
    mv = registry.register("churn", model, feature_sets=[member_features], metrics={"auc": 0.81})
    registry.set_alias("churn", "live", mv.version, reason="beats v1 offline")
    model = registry.load("churn", "live")

Artifacts are stored in formats that run no code (skops for scikit-learn, LightGBM text, the
Predictor as JSON) and signed with a key kept outside the metadata database; pickle is an
explicit opt-in. See docs/registry.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from parity.errors import (
    InvalidModelError,
    ModelSerializationError,
    NothingToRollBackError,
    WorkspaceError,
)
from parity.registry.artifacts import (
    Artifact,
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    ArtifactStore,
)
from parity.registry.base import AliasEvent, ModelVersion, Ref, Registry
from parity.registry.codeversion import CodeVersion, code_version
from parity.registry.formats import FORMATS
from parity.registry.lgbm import LightGBMClassifierModel, LightGBMRegressorModel
from parity.registry.model import Model, ProbabilisticModel
from parity.registry.postgres import PostgresRegistry
from parity.registry.signing import Signer, load_or_create_key, signer_from_key
from parity.registry.sqlite import SqliteRegistry

__all__ = [
    "FORMATS",
    "AliasEvent",
    "Artifact",
    "ArtifactIntegrityError",
    "ArtifactNotFoundError",
    "ArtifactStore",
    "CodeVersion",
    "InvalidModelError",
    "LightGBMClassifierModel",
    "LightGBMRegressorModel",
    "Model",
    "ModelSerializationError",
    "ModelVersion",
    "NothingToRollBackError",
    "PostgresRegistry",
    "ProbabilisticModel",
    "Ref",
    "Registry",
    "Signer",
    "SqliteRegistry",
    "code_version",
    "load_or_create_key",
    "open_registry",
    "registry_from_config",
    "signer_from_key",
]


def open_registry(
    url: str,
    artifacts_root: str | Path,
    *,
    signing_key: bytes | str | None = None,
    key_path: str | Path | None = None,
    allow_pickle: bool = False,
) -> Registry:
    """Open (creating if needed) the registry whose metadata lives at ``url``.

    ``url`` is ``sqlite:///abs/path/registry.db`` (the path after ``sqlite://`` must be
    absolute) or a PostgreSQL URL ``postgresql://user@host:5432/db``; for PostgreSQL an extra
    ``?schema=name`` query parameter picks the schema holding the tables (default ``parity``).
    Artifacts are stored under ``artifacts_root`` in both cases.

    Artifacts are signed with ``signing_key`` (bytes, or hex text) if given, else with the key
    in the file ``key_path`` (default ``<artifacts_root>/../keys/artifacts.key``, created with
    mode 0600 on first use). ``allow_pickle`` opts in to pickled artifacts for models that
    skops and LightGBM text cannot hold; loading a pickle runs code.
    """
    signer = None if signing_key is None else signer_from_key(signing_key, source="signing_key")
    options: dict[str, Any] = {
        "signer": signer, "key_path": key_path, "allow_pickle": allow_pickle
    }
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
        return SqliteRegistry("/" + path.lstrip("/"), artifacts_root, **options)
    if scheme in ("postgresql", "postgres"):
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        schemas = [value for key, value in query if key == "schema"]
        rest = urlencode([(key, value) for key, value in query if key != "schema"])
        plain_url = urlunsplit(parts._replace(query=rest))
        schema = schemas[-1] if schemas else "parity"
        return PostgresRegistry(plain_url, artifacts_root, schema=schema, **options)
    raise WorkspaceError(
        f"registry URL {url!r} is not supported: use sqlite:///abs/path/registry.db "
        f"(embedded) or postgresql://user@host:5432/dbname (server)"
    )


_CONFIG_KEYS = {"url", "allow_pickle", "key_path", "key_env"}


def registry_from_config(
    value: str | Mapping[str, Any] | None,
    data_dir: str | Path,
    *,
    environ: Mapping[str, str] | None = None,
) -> Registry:
    """The registry a workspace's ``registry:`` setting describes (the composition root's job).

    ``value`` is ``sqlite`` (``<data_dir>/registry.db``), a URL, or a mapping with ``url``
    (default ``sqlite``), ``allow_pickle`` (default false), ``key_path`` (default
    ``<data_dir>/keys/artifacts.key``; relative paths are under ``data_dir``) and ``key_env``
    (the name of an environment variable holding the key as hex, looked up in ``environ``,
    which the caller passes; library code reads no environment itself).
    Artifacts go to ``<data_dir>/artifacts``.
    """
    data_dir = Path(data_dir)
    section: Mapping[str, Any] = (
        {"url": value} if value is None or isinstance(value, str) else value
    )
    if not isinstance(section, Mapping):
        raise WorkspaceError(
            f"registry: {value!r} is not valid: write `registry: sqlite`, a URL, or a mapping "
            f"with url, allow_pickle, key_path or key_env"
        )
    unknown = sorted(set(section) - _CONFIG_KEYS)
    if unknown:
        raise WorkspaceError(
            f"registry: unknown setting(s) {', '.join(unknown)}; known: "
            f"{', '.join(sorted(_CONFIG_KEYS))}"
        )
    url = str(section.get("url") or "sqlite")
    if url == "sqlite":
        url = f"sqlite:///{data_dir / 'registry.db'}"
    allow_pickle = section.get("allow_pickle", False)
    if not isinstance(allow_pickle, bool):
        raise WorkspaceError(
            f"registry: allow_pickle is {allow_pickle!r}; write true or false"
        )
    key: str | None = None
    key_env = section.get("key_env")
    if key_env is not None:
        key = (environ or {}).get(str(key_env))
        if not key:
            raise WorkspaceError(
                f"registry: key_env names the environment variable {key_env!r}, which is not "
                f"set; export it with the artifact signing key (hex), or remove key_env to use "
                f"the key file"
            )
    key_path = section.get("key_path")
    path = None if key_path is None else data_dir / Path(str(key_path)).expanduser()
    return open_registry(
        url, data_dir / "artifacts", signing_key=key, key_path=path, allow_pickle=allow_pickle
    )
