"""The artifact signing key and HMAC-SHA256 signatures.

Whoever can write the metadata database can point a version at any file whose sha256 they
choose, so a matching sha256 proves nothing about who wrote the file. Every artifact therefore
carries an HMAC-SHA256 tag made with a key that lives *outside* the metadata database: a key
file (default ``data/keys/artifacts.key`` in a workspace, created with mode 0600 on first use)
or key bytes handed in by the caller (the workspace reads them from the environment variable
its config names; library code never reads the environment itself).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from parity.errors import ArtifactIntegrityError, ConfigError, StorageError

KEY_BYTES = 32
_MIN_KEY_BYTES = 16


class Signer:
    """Signs and verifies byte strings with one HMAC-SHA256 key.

    Contract: ``verify(data, tag)`` is True exactly when ``tag == sign(data)`` under the same
    key (compared in constant time). ``key_id`` names the key in messages without revealing it.
    """

    def __init__(self, key: bytes, *, source: str = "the given key") -> None:
        if not isinstance(key, bytes) or len(key) < _MIN_KEY_BYTES:
            raise ConfigError(
                f"the artifact signing key from {source} is too short "
                f"({len(key) if isinstance(key, bytes) else type(key).__name__}): use at least "
                f"{_MIN_KEY_BYTES} random bytes, e.g. `python -c \"import secrets; "
                f"print(secrets.token_hex(32))\"`"
            )
        self._key = key
        self.source = source
        # A fingerprint, not the key: lets an error say "signed with another key".
        self.key_id = hashlib.sha256(b"parity-artifact-key-id:" + key).hexdigest()[:16]

    def sign(self, data: bytes) -> bytes:
        """The 32-byte HMAC-SHA256 tag of ``data``."""
        return hmac.new(self._key, data, hashlib.sha256).digest()

    def verify(self, data: bytes, tag: bytes) -> bool:
        """Whether ``tag`` is this key's tag of ``data`` (constant-time comparison)."""
        return hmac.compare_digest(self.sign(data), tag)

    def __repr__(self) -> str:
        return f"Signer(key_id={self.key_id!r}, source={self.source!r})"


def signer_from_key(key: bytes | str, *, source: str = "the configured key") -> Signer:
    """A signer for key material given as bytes or as a hex string (>= 16 bytes)."""
    if isinstance(key, str):
        text = key.strip()
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raw = text.encode("utf-8")
        return Signer(raw, source=source)
    return Signer(key, source=source)


def load_or_create_key(path: str | Path) -> Signer:
    """The signer whose key is stored in the file at ``path``; created (0600) if missing.

    The file holds the key as hex. A file readable by group or others is refused: anyone who
    can read the key can sign an artifact that the registry will load.
    """
    path = Path(path)
    try:
        if not path.exists():
            _create_key_file(path)
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise ConfigError(
                f"the artifact signing key {path} is readable or writable by other users "
                f"(mode {mode:o}); anyone who can read it can sign artifacts the registry will "
                f"load. Fix it with `chmod 600 {path}`"
            )
        text = path.read_text(encoding="ascii").strip()
    except OSError as err:
        raise StorageError(
            f"cannot read or create the artifact signing key {path}: {err.strerror or err}. "
            f"Check the folder's permissions, or configure another key_path"
        ) from err
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"the artifact signing key {path} is not hex text; restore it from a backup (all "
            f"artifacts are signed with it) or, for a new registry, delete it to make a new one"
        ) from err
    try:
        raw = bytes.fromhex(text)
    except ValueError as err:
        raise ConfigError(
            f"the artifact signing key {path} is not hex text; restore it from a backup (all "
            f"artifacts are signed with it) or, for a new registry, delete it to make a new one"
        ) from err
    return Signer(raw, source=str(path))


def _create_key_file(path: Path) -> None:
    """Write a new random key (mode 0600) unless one exists; losing a race keeps the winner's.

    The key is written to a private temporary file and hard-linked into place, so a concurrent
    reader sees no file or the whole key, never an empty one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        os.chmod(path.parent, 0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.write(fd, (secrets.token_hex(KEY_BYTES) + "\n").encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def unsigned_error(what: str, path: Path | None, expected: str, why: str) -> ArtifactIntegrityError:
    """The error for an artifact whose signature is missing or wrong (never deserialised)."""
    return ArtifactIntegrityError(
        f"the artifact of {what} is not signed with this registry's key ({why}), so it was "
        f"not loaded: a file in the artifact store that parity did not sign may run code when "
        f"deserialised. If the model is yours, register it again from its training code "
        f"(registry.register(...)); if the artifact was signed with another key, configure "
        f"that key (registry: key_path)",
        expected=expected,
        actual=expected,
        path=path,
    )
