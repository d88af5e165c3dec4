"""The Online Archive as an executor of the case catalog (tests/catalog): facts loaded into
the archive through its live interface, features computed through its batch interface.

``tests/catalog/conftest.py`` adds these adapters to the catalog's executors, so every case
and the property test run on the archive too (no case is copied).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

import parity as pt
from parity.archive import Archive, open_archive, training_set
from tests.archive.backends import archive_url_for, drop_archive_schema
from tests.catalog.executors import Executor, Session


class _ArchiveSession(Session):
    def __init__(
        self, archive: Archive, url: str, fs: Sequence[pt.FeatureSet], cutoff: datetime | None
    ) -> None:
        self.archive, self.url, self.fs, self.cutoff = archive, url, list(fs), cutoff

    def evaluate(self, contexts: pd.DataFrame) -> pa.Table:
        return training_set(self.archive, self.fs, contexts, knowledge_cutoff=self.cutoff)

    def close(self) -> None:
        self.archive.close()
        drop_archive_schema(self.url)


class ArchiveExecutor(Executor):
    """The archive on one backend. Every version of the fact log is appended in a random
    order, in small batches (corrections may arrive before what they correct); the knowledge
    cutoff is applied by ``as_of``, not by loading less."""

    examples = 15

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.name = f"archive-{backend}"
        self.pytest_marks = (pytest.mark.services,) if backend == "postgres" else ()

    def check_available(self) -> None:
        if self.backend == "postgres":
            archive_url_for("postgres", Path("."))  # skips, or fails under CI, when down

    def load(
        self,
        workdir: Path,
        log: pt.FactLog,
        feature_sets: Sequence[pt.FeatureSet],
        cutoff: datetime | None,
        seed: int,
    ) -> Session:
        url = archive_url_for(self.backend, workdir)
        sources = list({s.name: s for fs in feature_sets for s in fs.sources}.values())
        archive = open_archive(url, sources, batch_rows=7)  # small chunks: many fetches
        rng = random.Random(seed)
        pieces: list[tuple[Any, pa.Table]] = []
        for source in sources:
            table = log.read(source)
            order = list(range(table.num_rows))
            rng.shuffle(order)
            size = rng.randint(1, 5)
            for start in range(0, len(order), size):
                pieces.append(
                    (source, table.take(pa.array(order[start : start + size], pa.int64())))
                )
        rng.shuffle(pieces)
        for source, piece in pieces:
            archive.append_canonical(source, piece)
        return _ArchiveSession(archive, url, feature_sets, cutoff)


ARCHIVE_EXECUTORS = [ArchiveExecutor("sqlite"), ArchiveExecutor("postgres")]
