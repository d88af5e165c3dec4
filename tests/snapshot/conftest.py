"""Fixtures of the snapshot tests: a programmable loopback service and a workspace using it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import parity as pt
from tests.snapshot.service import LiveService
from tests.snapshot.workspace import make_workspace


@pytest.fixture
def service() -> Iterator[LiveService]:
    live = LiveService()
    yield live
    live.close()


@pytest.fixture
def workspace(tmp_path: Path, service: LiveService) -> pt.Workspace:
    return make_workspace(tmp_path / "ws", service.url)
