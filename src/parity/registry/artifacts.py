"""A content-addressed artifact store on the local file system.

Layout under the store's root::

    sha256/<first two hex digits>/<full sha256 hex digest>

An artifact's name is the sha256 of its bytes, so the same content is stored once and a file
can always be checked against its name. A write goes to a temporary file in the target folder,
is flushed and fsynced, and is then moved into place with ``os.replace``: a reader sees either
no file or the whole file, never a partial one. Reads verify the hash before returning bytes.

A matching hash proves only that the file is the one the metadata names, and whoever writes the
metadata chooses that name. So model artifacts are also signed (``formats.py``) with a key kept
outside the metadata database (``signing.py``): ``load`` verifies hash and signature before any
byte is deserialised, and ``check`` does the same without deserialising (for promotions).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from parity.errors import (
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    InputError,
    StorageError,
)
from parity.registry import formats
from parity.registry.model import Model
from parity.registry.signing import Signer, load_or_create_key

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20

@dataclass(frozen=True)
class Artifact:
    """A stored artifact: its sha256 hex digest, its size in bytes and its path."""

    sha256: str
    size: int
    path: Path


class ArtifactStore:
    """Content-addressed files under ``<root>/sha256/<ab>/<hash>``.

    Contract: ``put(data)`` returns the artifact named by ``sha256(data)``, written atomically
    and durably (or already present with that content); ``read(sha)`` returns exactly the bytes
    that were put, or raises ``ArtifactIntegrityError`` / ``ArtifactNotFoundError``.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        signer: Signer | None = None,
        key_path: str | Path | None = None,
        allow_pickle: bool = False,
    ) -> None:
        self.root = Path(root)
        self._signer = signer
        # Beside the store by default (data/keys/artifacts.key in a workspace), never in it.
        self.key_path = Path(key_path) if key_path is not None else (
            self.root.parent / "keys" / "artifacts.key"
        )
        self.allow_pickle = bool(allow_pickle)

    @property
    def signer(self) -> Signer:
        """The signing key's signer; the key file is read (or created, 0600) on first use."""
        if self._signer is None:
            self._signer = load_or_create_key(self.key_path)
        return self._signer

    def put_model(self, model: object) -> Artifact:
        """Encode ``model`` in a format that runs no code (or pickle, if allowed), sign, store."""
        return self.put(formats.encode(model, self.signer, allow_pickle=self.allow_pickle))

    def read_verified(self, sha256: str, *, label: str | None = None) -> formats.Envelope:
        """The artifact's header and payload after checking its sha256 and its signature.

        Nothing is deserialised. Raises ``ArtifactNotFoundError`` or ``ArtifactIntegrityError``.
        """
        data = self.read(sha256, label=label)
        return formats.verify(
            data, self.signer, what=label or f"artifact {sha256}", sha256=sha256,
            path=self.path_for(sha256),
        )

    def check(self, sha256: str, *, label: str | None = None) -> formats.Envelope:
        """``read_verified``, and refuse formats this store would not load (pickle, unknown)."""
        envelope = self.read_verified(sha256, label=label)
        formats.check_loadable(
            envelope, allow_pickle=self.allow_pickle, what=label or f"artifact {sha256}"
        )
        return envelope

    def load(self, sha256: str, *, label: str | None = None) -> Model:
        """The model stored under ``sha256``, deserialised only after hash and signature pass."""
        envelope = self.read_verified(sha256, label=label)
        return formats.decode(
            envelope, allow_pickle=self.allow_pickle, what=label or f"artifact {sha256}"
        )

    def path_for(self, sha256: str) -> Path:
        """The path an artifact with this sha256 hex digest is stored at."""
        digest = _check_digest(sha256)
        return self.root / "sha256" / digest[:2] / digest

    def exists(self, sha256: str) -> bool:
        """Whether a file is stored under this sha256 (its content is not verified)."""
        return self.path_for(sha256).is_file()

    def put(self, data: bytes) -> Artifact:
        """Store ``data`` under its sha256 and return where it lives.

        If a file with that name already exists and its content is intact, nothing is written.
        A damaged file with that name is replaced by the correct content.
        """
        digest = hashlib.sha256(data).hexdigest()
        path = self.path_for(digest)
        if path.is_file() and _file_digest(path)[0] == digest:
            return Artifact(digest, len(data), path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as tmp:
                tmp.write(data)
                tmp.flush()
                os.fsync(tmp.fileno())
            # Read-only discourages editing an artifact in place; the name is its content.
            os.chmod(tmp_name, 0o444)
            os.replace(tmp_name, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
            raise
        _fsync_dir(path.parent)
        return Artifact(digest, len(data), path)

    def read(self, sha256: str, *, label: str | None = None) -> bytes:
        """Return the bytes stored under ``sha256`` after checking they still hash to it.

        ``label`` names the artifact's owner in error messages (e.g. "model 'churn' version 3").
        Raises ``ArtifactNotFoundError`` when the file is missing and ``ArtifactIntegrityError``
        when its content does not match its name (modified or truncated).
        """
        path = self.path_for(sha256)
        what = label or f"artifact {sha256}"
        try:
            actual, data = _file_digest(path, keep=True)
        except FileNotFoundError:
            raise ArtifactNotFoundError(
                f"the artifact of {what} is missing: no file at {path}. "
                f"Restore the artifacts folder ({self.root}) from a backup, or register the "
                f"model again"
            ) from None
        except OSError as err:
            raise StorageError(
                f"cannot read the artifact of {what} at {path}: {err.strerror or err}. Check "
                f"the folder's permissions"
            ) from err
        if actual != sha256:
            raise ArtifactIntegrityError(
                f"the artifact of {what} failed its integrity check: expected sha256 {sha256}, "
                f"found {actual} ({len(data)} bytes) at {path}. The file was modified or "
                f"truncated after it was stored, so it was not loaded. Restore it from a backup "
                f"or register the model again",
                expected=sha256,
                actual=actual,
                path=path,
            )
        return data


def _check_digest(sha256: str) -> str:
    if not isinstance(sha256, str) or not _SHA256_RE.match(sha256):
        raise InputError(
            f"{sha256!r} is not a sha256 hex digest: expected 64 lowercase hexadecimal characters"
        )
    return sha256


def _file_digest(path: Path, *, keep: bool = False) -> tuple[str, bytes]:
    """The sha256 of a file, streamed; with ``keep`` also its bytes (read once)."""
    hasher = hashlib.sha256()
    chunks: list[bytes] = []
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            hasher.update(chunk)
            if keep:
                chunks.append(chunk)
    return hasher.hexdigest(), b"".join(chunks)


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
