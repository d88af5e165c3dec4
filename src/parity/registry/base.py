"""The registry interface: model versions with lineage, and aliases that move atomically.

``Registry`` holds everything that is the same for every metadata backend (validation, artifact
storage, serialisation, alias resolution, error messages). A backend (SQLite, PostgreSQL)
implements only the few storage primitives at the bottom of the class, each one transaction.

Errors raised here besides ``parity.errors``::

    ParityError
    ├── NotFoundError
    │   └── ArtifactNotFoundError    (artifacts.py) an artifact file is missing
    ├── InputError
    │   └── InvalidModelError        (model.py) the object has no predict(X)
    ├── ArtifactIntegrityError       (artifacts.py) an artifact does not match its sha256
    ├── ModelSerializationError      (model.py) pickling or unpickling failed
    └── NothingToRollBackError       the alias has no earlier version to return to
"""

from __future__ import annotations

import json
import numbers
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from datetime import date, datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

from parity.errors import InputError, NotFoundError, NothingToRollBackError, TimeError
from parity.registry.artifacts import ArtifactStore
from parity.registry.codeversion import code_version
from parity.registry.model import Model, dumps_model, loads_model

MODEL_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")
ALIAS_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")

# A reference to one version: its number, an alias name, or None for the latest version.
Ref = int | str | None




@dataclass(frozen=True)
class ModelVersion:
    """One immutable registered version of a model, with its lineage.

    ``feature_sets`` maps feature set name -> version hash; ``training_set`` is the lineage of
    the training data (e.g. ``source``, ``knowledge_cutoff``, ``contexts_fingerprint``);
    ``code_version``/``code_dirty`` are the git commit and dirty flag of the training code
    (None outside git). ``aliases`` are the aliases pointing at this version when it was read.
    """

    name: str
    version: int
    artifact_sha256: str
    artifact_size: int
    feature_sets: dict[str, str]
    training_set: dict[str, Any] | None
    code_version: str | None
    code_dirty: bool | None
    params: dict[str, Any]
    metrics: dict[str, float]
    description: str | None
    created_at: datetime
    aliases: tuple[str, ...] = ()

    @property
    def ref(self) -> str:
        """``name@version``, the form the CLI accepts."""
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class AliasEvent:
    """One move of an alias, as appended to its history (``from_version`` None: first set)."""

    id: int
    name: str
    alias: str
    from_version: int | None
    to_version: int
    moved_at: datetime
    reason: str | None
    actor: str | None


# Called inside the alias transaction with (current version or None, latest move or None);
# returns the version to move to, or None to leave the alias where it is.
AliasChooser = Callable[[int | None, AliasEvent | None], int | None]


@dataclass(frozen=True)
class VersionDraft:
    """What a backend stores for a new version; the backend assigns the version number."""

    name: str
    artifact_sha256: str
    artifact_size: int
    feature_sets_json: str
    training_set_json: str | None
    code_version: str | None
    code_dirty: bool | None
    params_json: str
    metrics_json: str
    description: str | None
    created_at: datetime


# Column order shared by the backends' SELECTs and ``version_from_row``.
VERSION_COLUMNS = (
    "name, version, artifact_sha256, artifact_size, feature_sets, training_set, code_version, "
    "code_dirty, params, metrics, description, created_at"
)
EVENT_COLUMNS = "id, name, alias, from_version, to_version, moved_at, reason, actor"


class Registry(ABC):
    """Registered models: immutable numbered versions, their artifacts and movable aliases.

    Versions are 1, 2, 3... per model name and never change; registering again makes a new
    version. Aliases (``candidate``, ``live``, any name) point at a version and move
    atomically; every move is appended to the alias history. Safe to use from several
    processes at once.
    """

    def __init__(self, artifacts_root: str | Path) -> None:
        self.artifacts = ArtifactStore(artifacts_root)

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
        ``code_dir`` (default: the current directory). The artifact is pickled and stored
        under its sha256 before the version row is written.
        """
        name = check_model_name(name)
        feature_sets_json = _dump_json(normalize_feature_sets(feature_sets), "feature_sets")
        training_set_json = (
            None
            if training_set is None
            else _dump_json(_as_dict(training_set, "training_set"), "training_set")
        )
        params_json = _dump_json(_as_dict(params or {}, "params"), "params")
        metrics_json = _dump_json(_normalize_metrics(metrics or {}), "metrics")
        if description is not None and not isinstance(description, str):
            raise InputError(f"description must be a string, not {type(description).__name__}")
        data = dumps_model(model)
        code = code_version(Path.cwd() if code_dir is None else code_dir)
        artifact = self.artifacts.put(data)
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
        (nothing is recorded then).
        """
        name = check_model_name(name)
        alias = check_alias(alias)
        target = _check_version_number(version)

        def choose(current: int | None, _latest: AliasEvent | None) -> int | None:
            return None if current == target else target

        with self._session():
            self.get(name, target)  # NotFoundError naming what exists; versions are never deleted
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
                    f"model {name!r} has no version {number}; it has {_describe_versions(existing)}"
                )
            return self._with_aliases(name, found)[0]

    def load(self, name: str, ref: Ref = None) -> Model:
        """Deserialise one version of a model (see ``get`` for ``ref``), hash checked first."""
        return self.load_version(self.get(name, ref))

    def load_version(self, version: ModelVersion) -> Model:
        """Deserialise the artifact of ``version`` after verifying its sha256.

        Raises ``ArtifactIntegrityError`` (tampered or truncated file) or
        ``ArtifactNotFoundError`` before any byte is unpickled.
        """
        label = f"model {version.name!r} version {version.version}"
        data = self.artifacts.read(version.artifact_sha256, label=label)
        return loads_model(data, label=label)

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
            return _check_version_number(int(ref))
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


# --- validation and encoding, shared with the backends -----------------------------------


def check_model_name(name: object) -> str:
    """Return ``name`` if it is a valid model name, else raise ``InputError``."""
    if not isinstance(name, str) or not MODEL_NAME_RE.match(name):
        raise InputError(
            f"model name {name!r} is not valid: use up to 128 letters, digits, '_', '-' or '.', "
            f"starting with a letter or '_'"
        )
    return name


def check_alias(alias: object) -> str:
    """Return ``alias`` if it is a valid alias name, else raise ``InputError``."""
    if not isinstance(alias, str) or not ALIAS_RE.match(alias):
        raise InputError(
            f"alias {alias!r} is not valid: use up to 64 letters, digits, '_' or '-', starting "
            f"with a letter or '_' (e.g. 'live', 'candidate')"
        )
    return alias


def normalize_feature_sets(feature_sets: Iterable[Any] | Mapping[str, str]) -> dict[str, str]:
    """Feature sets as name -> version, from FeatureSet objects or a mapping."""
    if isinstance(feature_sets, Mapping):
        pairs = list(feature_sets.items())
    elif hasattr(feature_sets, "name") and hasattr(feature_sets, "version"):
        pairs = [(feature_sets.name, feature_sets.version)]
    elif isinstance(feature_sets, Iterable) and not isinstance(feature_sets, (str, bytes)):
        pairs = []
        for fs in feature_sets:
            if not (hasattr(fs, "name") and hasattr(fs, "version")):
                raise InputError(
                    f"feature_sets holds {fs!r}, which is not a FeatureSet; pass FeatureSet "
                    f"objects or a mapping of feature set name -> version"
                )
            pairs.append((fs.name, fs.version))
    else:
        raise InputError(
            f"feature_sets must be a list of FeatureSet objects or a mapping name -> version, "
            f"not {type(feature_sets).__name__}"
        )
    result: dict[str, str] = {}
    for fs_name, fs_version in pairs:
        if not isinstance(fs_name, str) or not isinstance(fs_version, str):
            raise InputError(
                f"feature set {fs_name!r}: name and version must be strings, got "
                f"{type(fs_name).__name__} and {type(fs_version).__name__}"
            )
        if result.get(fs_name, fs_version) != fs_version:
            raise InputError(
                f"feature set {fs_name!r} is listed twice with different versions "
                f"({result[fs_name]} and {fs_version}); a model is trained on one version"
            )
        result[fs_name] = fs_version
    return dict(sorted(result.items()))


def version_from_row(row: Sequence[Any]) -> ModelVersion:
    """Build a ``ModelVersion`` (no aliases) from a row in ``VERSION_COLUMNS`` order."""
    (name, version, sha, size, fsets, tset, code, dirty, params, metrics, desc, created) = row
    return ModelVersion(
        name=name,
        version=int(version),
        artifact_sha256=sha,
        artifact_size=int(size),
        feature_sets=json.loads(fsets),
        training_set=None if tset is None else json.loads(tset),
        code_version=code,
        code_dirty=None if dirty is None else bool(dirty),
        params=json.loads(params),
        metrics=json.loads(metrics),
        description=desc,
        created_at=to_utc(created),
    )


def event_from_row(row: Sequence[Any]) -> AliasEvent:
    """Build an ``AliasEvent`` from a row in ``EVENT_COLUMNS`` order."""
    event_id, name, alias, from_version, to_version, moved_at, reason, actor = row
    return AliasEvent(
        id=int(event_id),
        name=name,
        alias=alias,
        from_version=None if from_version is None else int(from_version),
        to_version=int(to_version),
        moved_at=to_utc(moved_at),
        reason=reason,
        actor=actor,
    )


def to_utc(value: datetime | str) -> datetime:
    """An aware UTC datetime from a stored timestamp (an aware datetime or ISO 8601 text)."""
    parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
    if parsed.tzinfo is None:
        raise TimeError(f"stored timestamp {value!r} has no time zone; the registry is damaged")
    return parsed.astimezone(timezone.utc)


def _check_version_number(version: object) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InputError(f"version {version!r} is not valid: versions are integers 1, 2, 3...")
    return version


def _describe_versions(versions: list[int]) -> str:
    if not versions:
        return "no versions"
    if len(versions) > 10:
        return f"versions {versions[0]}..{versions[-1]}"
    return "versions " + ", ".join(str(v) for v in versions)


def _as_dict(value: Mapping[str, Any], field: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise InputError(f"{field} must be a mapping (a dict), not {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            raise InputError(f"{field} key {key!r} is not a string; JSON keys must be strings")
    return dict(value)


def _normalize_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    result: dict[str, float] = {}
    for key, value in _as_dict(metrics, "metrics").items():
        if not isinstance(value, numbers.Real):
            raise InputError(
                f"metric {key!r} is {value!r}, not a number; metrics are numbers (put other "
                f"values in params or description)"
            )
        result[key] = float(value)
    return result


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise TimeError(
                f"naive datetime {value!r}: give it a time zone (UTC) so it means one moment"
            )
        return value.astimezone(timezone.utc).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    raise TypeError(f"{type(value).__name__} value {value!r} is not JSON-compatible")


def _dump_json(value: Any, field: str) -> str:
    try:
        return json.dumps(value, sort_keys=True, default=_json_default)
    except TimeError as err:
        raise TimeError(f"{field}: {err}") from err
    except (TypeError, ValueError) as err:
        raise InputError(
            f"{field} cannot be stored: {err}. Use JSON values (str, int, float, bool, None, "
            f"lists, dicts) or aware datetimes"
        ) from err
