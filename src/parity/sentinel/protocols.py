"""What the gate needs from the registry: a small Protocol instead of ``Any``.

``parity.registry.Registry`` satisfies it; so does any object with these methods (a test
double, a registry behind an HTTP client).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from parity.registry.base import AliasEvent, ModelVersion
from parity.sentinel.isolation import ArtifactReader


class ArtifactPaths(ArtifactReader, Protocol):
    """Where the registry keeps artifact files, and how it verifies them before any load."""

    @property
    def root(self) -> Path:
        """The artifacts folder (verdicts are stored beside it by default)."""
        ...

    def path_for(self, sha256: str) -> Path:
        """The file of the artifact with this sha256."""
        ...


class ModelRegistry(Protocol):
    """The part of ``parity.registry.Registry`` the gate uses."""

    @property
    def artifacts(self) -> ArtifactPaths:
        """The artifact store."""
        ...

    def get(self, name: str, ref: int | str | None = None) -> ModelVersion:
        """One version by number or alias (NotFoundError if absent)."""
        ...

    def aliases(self, name: str) -> dict[str, int]:
        """Alias -> version of a model."""
        ...

    def load(self, name: str, ref: int | str | None = None) -> Any:
        """The model object of a version."""
        ...

    def load_version(self, version: ModelVersion) -> Any:
        """The model object of a version record."""
        ...

    def set_alias(self, name: str, alias: str, version: int, *, reason: str | None = None,
                  actor: str | None = None) -> Any:
        """Point ``alias`` at ``version`` (recorded in the alias history)."""
        ...

    def rollback(self, name: str, alias: str, *, reason: str | None = None,
                 actor: str | None = None) -> AliasEvent:
        """Move ``alias`` back to its previous version."""
        ...


__all__ = ["ArtifactPaths", "ModelRegistry"]
