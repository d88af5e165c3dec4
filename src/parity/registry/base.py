"""The registry interface: model versions with lineage, and aliases that move atomically.

``Registry`` holds everything that is the same for every metadata backend (validation, artifact
storage, serialisation, alias resolution, error messages). A backend (SQLite, PostgreSQL)
implements only the few storage primitives at the bottom of the class (``sql.py`` holds the
SQL they share).

Artifacts are signed and stored in formats that run no code (``formats.py``); ``load``,
``set_alias`` and ``rollback`` verify an artifact's sha256 and signature before it is
deserialised or made the target of an alias. Errors are those of ``parity.errors``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

from parity.errors import InputError, NotFoundError, NothingToRollBackError
from parity.registry.artifacts import ArtifactStore
from parity.registry.codeversion import code_version
from parity.registry.model import Model
from parity.registry.records import (
    EVENT_COLUMNS,
    MAX_VERSION,
    VERSION_COLUMNS,
    AliasChooser,
    AliasEvent,
    ModelVersion,
    Ref,
    VersionDraft,
    as_dict,
    check_alias,
    check_model_name,
    check_version_number,
    describe_versions,
    dump_json,
    event_from_row,
    normalize_feature_sets,
    normalize_metrics,
    to_utc,
    version_from_row,
)
from parity.registry.signing import Signer

# Re-exported: the records were defined here before records.py existed.
__all__ = [
    "EVENT_COLUMNS",
    "MAX_VERSION",
    "VERSION_COLUMNS",
    "AliasChooser",
    "AliasEvent",
    "ModelVersion",
    "Ref",
    "Registry",
    "VersionDraft",
    "check_alias",
    "check_model_name",
    "event_from_row",
    "normalize_feature_sets",
    "to_utc",
    "version_from_row",
]


class Registry(ABC):
    """Registered models: immutable numbered versions, their artifacts and movable aliases.

    Versions are 1, 2, 3... per model name and never change; registering again makes a new
    version. Aliases (``candidate``, ``live``, any name) point at a version and move
    atomically; every move is appended to the alias history. Safe to use from several
    processes at once.
    """

    def __init__(
        self,
        artifacts_root: str | Path,
        *,
        signer: Signer | None = None,
        key_path: str | Path | None = None,
        allow_pickle: bool = False,
    ) -> None:
        """``signer`` (or the key file at ``key_path``, default ``<artifacts_root>/../keys/
        artifacts.key``, created 0600 on first use) signs and verifies artifacts.
        ``allow_pickle`` opts in to pickled artifacts for models skops and LightGBM text cannot
        hold: loading a pickle runs code, so enable it only if you trust every writer."""
        self.artifacts = ArtifactStore(
            artifacts_root, signer=signer, key_path=key_path, allow_pickle=allow_pickle
        )

    # --- writing -------------------------------------------------------------------------

    def register(
        self,
        name: str,
        model: object,
        *,
        feature_sets: Iterable[Any] | Mapping[str, str],
        training_set: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        code_dir: str | Path | None = None,
        description: str | None = None,
    ) -> ModelVersion:
        """Store ``model`` as the next version of ``name`` and return its metadata.

        ``feature_sets`` is a list of FeatureSet objects or a mapping name -> version.
        ``training_set``, ``params`` and ``metrics`` must be JSON-compatible (aware datetimes
        are stored as ISO 8601 strings). The code version is read from the git work tree of
        ``code_dir`` (default: the current directory). The artifact is encoded (skops for
        scikit-learn, LightGBM text, a ``Predictor`` as JSON around its model; pickle only if
        the registry allows it), signed, and stored under its sha256 before the version row is
        written. Raises ``ModelSerializationError`` for a model no allowed format can hold.
        """
        name = check_model_name(name)
        feature_sets_json = dump_json(normalize_feature_sets(feature_sets), "feature_sets")
        training_set_json = (
            None
            if training_set is None
            else dump_json(as_dict(training_set, "training_set"), "training_set")
        )
        params_json = dump_json(as_dict(params or {}, "params"), "params")
        metrics_json = dump_json(normalize_metrics(metrics or {}), "metrics")
        if description is not None and not isinstance(description, str):
            raise InputError(f"description must be a string, not {type(description).__name__}")
        artifact = self.artifacts.put_model(model)
        code = code_version(Path.cwd() if code_dir is None else code_dir)
        draft = VersionDraft(
            name=name,
            artifact_sha256=artifact.sha256,
            artifact_size=artifact.size,
            feature_sets_json=feature_sets_json,
            training_set_json=training_set_json,
            params_json=params_json,
            metrics_json=metrics_json,
            code_version=code.commit if code else None,
            code_dirty=code.dirty if code else None,
            description=description,
            created_at=datetime.now(timezone.utc),
        )
        with self._session():
            return self.get(name, self._insert_version(draft))

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        reason: str | None = None,
        actor: str | None = None,
    ) -> AliasEvent | None:
        """Point ``alias`` of model ``name`` at ``version``, atomically, and record the move.

        Returns the recorded move, or None when the alias already pointed at ``version``
        (nothing is recorded then). The version's artifact is verified first (sha256 and
        signature, and a format this registry loads): a corrupted, unsigned or refused
        artifact raises ``ArtifactIntegrityError`` / ``ModelSerializationError`` and the alias
        does not move.
        """
        name = check_model_name(name)
        alias = check_alias(alias)
        target = check_version_number(version)

        def choose(current: int | None, _latest: AliasEvent | None) -> int | None:
            return None if current == target else target

        with self._session():
            # NotFoundError naming what exists; versions are never deleted.
            self.verify_version(self.get(name, target))
            return self._move_alias(name, alias, choose, reason, actor)

    def rollback(
        self,
        name: str,
        alias: str = "live",
        reason: str | None = None,
        actor: str | None = None,
    ) -> AliasEvent:
        """Move ``alias`` back to the version it pointed at before its latest move.

        The rollback is itself a recorded move, so rolling back twice returns to where the
        alias started. Raises ``NothingToRollBackError`` when the alias never moved or its
        latest move was the one that first set it.
        """
        name = check_model_name(name)
        alias = check_alias(alias)

        def choose(current: int | None, latest: AliasEvent | None) -> int | None:
            if latest is None:
                raise NothingToRollBackError(
                    f"cannot roll back alias {alias!r} of model {name!r}: it has never been "
                    f"set. Point it at a version first, e.g. "
                    f"`parity models promote {name} VERSION --alias {alias}`"
                )
            if latest.from_version is None:
                raise NothingToRollBackError(
                    f"cannot roll back alias {alias!r} of model {name!r}: its latest move first "
                    f"set it (to version {latest.to_version}), so there is no earlier version "
                    f"to return to. Promote the version you want instead"
                )
            found = self._select_versions(name, latest.from_version)
            if found:  # versions are never deleted; verify before the alias points there
                self.verify_version(found[0])
            return latest.from_version

        with self._session():
            self._require_model(name)
            event = self._move_alias(name, alias, choose, reason or "rollback", actor)
        assert event is not None  # a recorded move always has from_version != to_version
        return event

    # --- reading -------------------------------------------------------------------------

    def get(self, name: str, ref: Ref = None) -> ModelVersion:
        """The metadata of one version: ``ref`` is a version number, an alias, or None (latest).

        Raises ``NotFoundError`` naming what exists when the model, version or alias does not.
        """
        name = check_model_name(name)
        with self._session():
            number = self._resolve(name, ref)
            found = self._select_versions(name, number)
            if not found:
                self._require_model(name)
                existing = [v.version for v in self._select_versions(name, None)]
                raise NotFoundError(
                    f"model {name!r} has no version {number}; it has {describe_versions(existing)}"
                )
            return self._with_aliases(name, found)[0]

    def load(self, name: str, ref: Ref = None) -> Model:
        """Deserialise one version of a model (see ``get`` for ``ref``), verified first."""
        return self.load_version(self.get(name, ref))

    def load_version(self, version: ModelVersion) -> Model:
        """Deserialise the artifact of ``version`` after verifying its sha256 and signature.

        Raises ``ArtifactIntegrityError`` (tampered, truncated or unsigned file),
        ``ArtifactNotFoundError``, or ``ModelSerializationError`` (a pickle this registry does
        not allow) before any byte is deserialised.
        """
        label = f"model {version.name!r} version {version.version}"
        return self.artifacts.load(version.artifact_sha256, label=label)

    def verify(self, name: str, ref: Ref = None) -> ModelVersion:
        """Check one version's artifact (sha256, signature, allowed format) without loading it.

        Returns the version; raises as ``load_version`` would, but deserialises nothing.
        """
        version = self.get(name, ref)
        self.verify_version(version)
        return version

    def verify_version(self, version: ModelVersion) -> None:
        """``verify`` for a version already read."""
        label = f"model {version.name!r} version {version.version}"
        self.artifacts.check(version.artifact_sha256, label=label)

    def list_models(self) -> list[str]:
        """The names of all registered models, sorted."""
        return self._select_model_names()

    def list_versions(self, name: str) -> list[ModelVersion]:
        """All versions of a model, oldest first. Raises ``NotFoundError`` for unknown names."""
        name = check_model_name(name)
        with self._session():
            versions = self._select_versions(name, None)
            if not versions:
                self._require_model(name)
            return self._with_aliases(name, versions)

    def aliases(self, name: str) -> dict[str, int]:
        """The aliases of a model and the versions they point at."""
        name = check_model_name(name)
        with self._session():
            self._require_model(name)
            return self._select_aliases(name)

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        """Every move of the model's aliases (or of one alias), oldest first."""
        name = check_model_name(name)
        alias = None if alias is None else check_alias(alias)
        with self._session():
            self._require_model(name)
            return self._select_history(name, alias)

    def close(self) -> None:  # noqa: B027  (optional hook: most backends hold nothing open)
        """Release held resources. The default holds none."""

    def __enter__(self) -> Registry:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- helpers -------------------------------------------------------------------------

    def _resolve(self, name: str, ref: Ref) -> int:
        if ref is None:
            versions = self._select_versions(name, None)
            if not versions:
                self._require_model(name)
            return versions[-1].version
        if isinstance(ref, bool) or not isinstance(ref, (int, str)):
            raise InputError(
                f"model reference {ref!r} is not valid: use a version number, an alias name "
                f"or None for the latest version"
            )
        if isinstance(ref, int) or ref.isdigit():
            return check_version_number(int(ref))
        alias = check_alias(ref)
        aliases = self._select_aliases(name)
        if alias not in aliases:
            self._require_model(name)
            known = ", ".join(f"{a} -> {v}" for a, v in sorted(aliases.items())) or "none yet"
            raise NotFoundError(
                f"model {name!r} has no alias {alias!r}; its aliases: {known}. Set one with "
                f"`parity models promote {name} VERSION --alias {alias}`"
            )
        return aliases[alias]

    def _require_model(self, name: str) -> None:
        names = self._select_model_names()
        if name not in names:
            known = ", ".join(names) if names else "none are registered yet"
            raise NotFoundError(f"no model named {name!r}; registered models: {known}")

    def _with_aliases(self, name: str, versions: list[ModelVersion]) -> list[ModelVersion]:
        by_version: dict[int, list[str]] = {}
        for alias, number in self._select_aliases(name).items():
            by_version.setdefault(number, []).append(alias)
        return [replace(v, aliases=tuple(sorted(by_version.get(v.version, [])))) for v in versions]

    # --- storage primitives: one transaction each ----------------------------------------

    def _session(self) -> AbstractContextManager[None]:
        """A scope in which the primitives may share one connection (per thread, reentrant).

        Public methods wrap their primitive calls in it so that one call costs one connection.
        The default shares nothing.
        """
        return nullcontext()

    @abstractmethod
    def _insert_version(self, draft: VersionDraft) -> int:
        """Atomically give ``draft`` the next version number of its model, store it, return it.

        Concurrent calls, from any process, never produce the same number twice.
        """

    @abstractmethod
    def _select_versions(self, name: str, version: int | None) -> list[ModelVersion]:
        """Versions of ``name`` (all, oldest first, or only ``version``); aliases left empty."""

    @abstractmethod
    def _select_model_names(self) -> list[str]:
        """All model names, sorted."""

    @abstractmethod
    def _select_aliases(self, name: str) -> dict[str, int]:
        """alias -> version for one model."""

    @abstractmethod
    def _move_alias(
        self,
        name: str,
        alias: str,
        choose: AliasChooser,
        reason: str | None,
        actor: str | None,
    ) -> AliasEvent | None:
        """In one transaction serialised with every other move of this model's aliases:
        read the alias's current version and latest recorded move, call ``choose`` with them,
        and if it returns a version, point the alias there and append the move to the history.
        Returns the new move, or None if ``choose`` returned None. Exceptions from ``choose``
        abort the transaction and propagate.
        """

    @abstractmethod
    def _select_history(self, name: str, alias: str | None) -> list[AliasEvent]:
        """The recorded moves of one model's aliases (or of one alias), oldest first."""
