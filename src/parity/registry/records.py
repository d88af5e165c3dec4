"""The registry's records and their validation: versions, alias moves, names, JSON fields.

Shared by ``Registry`` (base.py) and the SQL backends (sql.py): what a version and an alias
move are, how names and numbers are checked, and how rows are encoded and decoded.
"""

from __future__ import annotations

import json
import numbers
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from parity.errors import InputError, InputTypeError, TimeError

MODEL_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")
ALIAS_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")

# A reference to one version: its number, an alias name, or None for the latest version.
Ref = int | str | None
# Versions are stored as 32-bit integers (PostgreSQL INTEGER); anything above is no version.
MAX_VERSION = 2**31 - 1


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


def check_version_number(version: object) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InputError(f"version {version!r} is not valid: versions are integers 1, 2, 3...")
    if version > MAX_VERSION:
        raise InputError(
            f"version {version} is not valid: versions are integers from 1 to {MAX_VERSION}; "
            f"list the existing ones with `parity models show NAME`"
        )
    return version


def describe_versions(versions: list[int]) -> str:
    if not versions:
        return "no versions"
    if len(versions) > 10:
        return f"versions {versions[0]}..{versions[-1]}"
    return "versions " + ", ".join(str(v) for v in versions)


def as_dict(value: Mapping[str, Any], field: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise InputError(f"{field} must be a mapping (a dict), not {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            raise InputError(f"{field} key {key!r} is not a string; JSON keys must be strings")
    return dict(value)


def normalize_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    result: dict[str, float] = {}
    for key, value in as_dict(metrics, "metrics").items():
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
    raise InputTypeError(f"{type(value).__name__} value {value!r} is not JSON-compatible")


def dump_json(value: Any, field: str) -> str:
    try:
        return json.dumps(value, sort_keys=True, default=_json_default)
    except TimeError as err:
        raise TimeError(f"{field}: {err}") from err
    except (TypeError, ValueError) as err:
        raise InputError(
            f"{field} cannot be stored: {err}. Use JSON values (str, int, float, bool, None, "
            f"lists, dicts) or aware datetimes"
        ) from err
