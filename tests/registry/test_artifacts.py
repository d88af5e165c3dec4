"""The content-addressed artifact store (formats and signing: test_formats.py)."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from parity.errors import InputError, NotFoundError, ParityError
from parity.registry import (
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    ArtifactStore,
    code_version,
)


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "artifacts")


def _stored_files(store: ArtifactStore) -> list[Path]:
    return sorted(p for p in store.root.rglob("*") if p.is_file())


# --- the store ----------------------------------------------------------------------------


def test_put_stores_bytes_under_their_sha256(store: ArtifactStore) -> None:
    data = b"model bytes"
    sha = hashlib.sha256(data).hexdigest()

    artifact = store.put(data)

    assert (artifact.sha256, artifact.size) == (sha, len(data))
    assert artifact.path == store.root / "sha256" / sha[:2] / sha
    assert artifact.path.read_bytes() == data
    assert store.exists(sha)
    assert store.read(sha) == data
    assert _stored_files(store) == [artifact.path]  # no temporary file left behind


def test_the_same_content_is_stored_once(store: ArtifactStore) -> None:
    first = store.put(b"same")
    mtime = first.path.stat().st_mtime_ns
    second = store.put(b"same")
    store.put(b"other")

    assert second == first
    assert first.path.stat().st_mtime_ns == mtime  # not rewritten
    assert len(_stored_files(store)) == 2


def test_stored_artifacts_are_read_only(store: ArtifactStore) -> None:
    mode = store.put(b"x").path.stat().st_mode
    assert not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[:-1], id="truncated"),
        pytest.param(lambda data: b"X" + data[1:], id="modified"),
        pytest.param(lambda data: b"", id="emptied"),
    ],
)
def test_reading_a_damaged_artifact_raises_integrity_error(
    store: ArtifactStore, damage: Any
) -> None:
    artifact = store.put(b"0123456789")
    artifact.path.chmod(0o644)
    artifact.path.write_bytes(damage(b"0123456789"))
    actual = hashlib.sha256(artifact.path.read_bytes()).hexdigest()

    with pytest.raises(ArtifactIntegrityError) as caught:
        store.read(artifact.sha256, label="model 'churn' version 3")

    err = caught.value
    assert isinstance(err, ParityError)
    assert (err.expected, err.actual, err.path) == (artifact.sha256, actual, artifact.path)
    message = str(err)
    assert "model 'churn' version 3" in message
    assert artifact.sha256 in message and actual in message


def test_put_repairs_a_damaged_artifact(store: ArtifactStore) -> None:
    artifact = store.put(b"good")
    artifact.path.chmod(0o644)
    artifact.path.write_bytes(b"bad")

    store.put(b"good")

    assert store.read(artifact.sha256) == b"good"


def test_missing_and_malformed_names(store: ArtifactStore) -> None:
    missing = hashlib.sha256(b"never stored").hexdigest()
    with pytest.raises(ArtifactNotFoundError, match=missing) as caught:
        store.read(missing)
    assert isinstance(caught.value, NotFoundError)
    assert not store.exists(missing)
    with pytest.raises(InputError, match="not a sha256"):
        store.read("../../etc/passwd")


def test_a_failed_write_leaves_no_file(store: ArtifactStore, monkeypatch: Any) -> None:
    def broken_fsync(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        store.put(b"data")
    assert _stored_files(store) == []


# --- code version -------------------------------------------------------------------------


def test_code_version_is_none_outside_git(tmp_path: Path) -> None:
    assert code_version(tmp_path) is None
    assert code_version(tmp_path / "does-not-exist") is None
