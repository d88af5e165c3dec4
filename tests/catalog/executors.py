"""Executors of the time rules, each behind one small adapter, as the case catalog runs them.

An adapter says three things: its ``name`` (the id in test names and in marks), how it loads
facts (``load``: from a fact log, the knowledge cutoff it must respect, an arrival order) and
how it evaluates contexts (the returned ``Session.evaluate``). To add an executor (Spark, the
Online Archive...), write one adapter class here and add an instance to ``EXECUTORS``; every
case of the catalog then runs on it, and a case it cannot pass yet gets a ``notyet`` /
``notimpl`` mark naming it (see ``tests/catalog/marks.py``).
"""

from __future__ import annotations

import random
import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import parity as pt
from parity.contexts import AT, normalize_contexts
from parity.definitions import RECORDED_AT
from parity.engines.duckdb import DuckDBEngine
from parity.online import OnlineFeatures, open_online
from parity.timeutil import datetime_to_us
from tests.conformance import assert_same
from tests.services import REDIS_URL, redis_or_skip
from tests.spark.session import spark_or_skip, spark_session


class Session(ABC):
    """An executor loaded with one world of facts."""

    @abstractmethod
    def evaluate(self, contexts: pd.DataFrame) -> pa.Table:
        """Contexts with every feature appended: the table ``training_set`` returns."""

    def close(self) -> None:  # noqa: B027 (most sessions hold nothing to release)
        """Release what ``load`` opened."""


class Executor(ABC):
    """One executor of the time rules, as the catalog sees it."""

    name: str
    #: property-test examples per run (PARITY_HYPOTHESIS_EXAMPLES overrides)
    examples: int = 25
    #: whether the arrival order of facts can change its answer path (the online stores)
    order_sensitive: bool = False
    #: pytest marks of every test it runs (``spark``: deselect with ``-m "not spark"``)
    pytest_marks: tuple[pytest.MarkDecorator, ...] = ()

    def check_available(self) -> None:  # noqa: B027 (embedded executors need no service)
        """Skip (or fail, with PARITY_REQUIRE_SERVICES=1) when a service it needs is down."""

    @abstractmethod
    def load(
        self,
        workdir: Path,
        log: pt.FactLog,
        feature_sets: Sequence[pt.FeatureSet],
        cutoff: datetime | None,
        seed: int,
    ) -> Session:
        """Load the facts of ``log`` (as known before ``cutoff``) in an order drawn from
        ``seed``; ``workdir`` is a fresh, empty folder for the executor's own files."""


# -- DuckDB -----------------------------------------------------------------------------------


class _EngineSession(Session):
    def __init__(self, engine: DuckDBEngine, log: pt.FactLog, fs: Sequence[pt.FeatureSet],
                 cutoff: datetime | None) -> None:
        self.engine, self.log, self.fs, self.cutoff = engine, log, list(fs), cutoff

    def evaluate(self, contexts: pd.DataFrame) -> pa.Table:
        return self.engine.training_set(contexts, self.fs, self.log, knowledge_cutoff=self.cutoff)


class DuckDBExecutor(Executor):
    """The DuckDB engine with one plan: ``auto``, ``sweep`` (running sums) or ``join``."""

    examples = 60

    def __init__(self, plan: str) -> None:
        self.plan = plan
        self.name = f"duckdb-{plan}"

    def load(self, workdir: Path, log: pt.FactLog, feature_sets: Sequence[pt.FeatureSet],
             cutoff: datetime | None, seed: int) -> Session:
        engine = DuckDBEngine(memory_limit="1GB", threads=2, plan=self.plan)
        return _EngineSession(engine, log, feature_sets, cutoff)


# -- online -----------------------------------------------------------------------------------


class _OnlineSession(Session):
    def __init__(self, online: OnlineFeatures, fs: Sequence[pt.FeatureSet], cleanup: Any) -> None:
        self.online, self.fs, self.cleanup = online, list(fs), cleanup

    def evaluate(self, contexts: pd.DataFrame) -> pa.Table:
        """The batch read, after checking that one-by-one reads give the same values."""
        names = [f.name for fs in self.fs for f in fs.features]
        batch = self.online.get_features_batch(self.fs, contexts)
        request = {AT, *(k for fs in self.fs for k in fs.entity.keys)}
        request |= {r for fs in self.fs for r in fs.request_fields}
        rows = normalize_contexts(contexts, self.fs).to_pylist()  # None stays None, not NaN
        singles = [self.online.get_features(self.fs, {k: r[k] for k in request}) for r in rows]
        one_by_one = pa.Table.from_pylist(singles, schema=batch.select(names).schema)
        assert_same(batch, one_by_one, names)
        return batch

    def close(self) -> None:
        self.online.close()
        self.cleanup()


class OnlineExecutor(Executor):
    """The online path over one store backend, fed through its public API.

    With an odd seed the facts are appended to the online fact log and materialized; with an
    even seed they are pushed after an empty materialize, in small batches in a random order
    (corrections may arrive before what they correct).
    Only versions recorded before the knowledge cutoff are loaded: the store then holds what
    the online system knew at the cutoff, which is what a training set pinned to it reads.
    Eviction is off (lookback=None) so that every request time must agree.
    """

    order_sensitive = True

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.name = f"online-{backend}"

    def check_available(self) -> None:
        if self.backend == "redis":
            redis_or_skip()

    def _url(self, workdir: Path) -> tuple[str, Any]:
        if self.backend == "memory":
            return "memory://", lambda: None
        if self.backend == "sqlite":
            return f"sqlite:///{workdir / 'online.db'}", lambda: None
        url = f"{REDIS_URL}?prefix=parity-test-{uuid.uuid4().hex[:12]}"

        def cleanup() -> None:
            from parity.online.redis import RedisStore

            cleaner = RedisStore(url)
            cleaner.delete_prefix()
            cleaner.close()

        return url, cleanup

    def load(self, workdir: Path, log: pt.FactLog, feature_sets: Sequence[pt.FeatureSet],
             cutoff: datetime | None, seed: int) -> Session:
        url, cleanup = self._url(workdir)
        online_log = pt.FactLog(workdir / "online-log")
        online = open_online(url, online_log, list(feature_sets), lookback=None)
        online.reset()
        rng = random.Random(seed)
        bulk = seed % 2 == 1  # odd seeds: materialize everything; even: push everything
        pushed: list[tuple[str, pa.Table]] = []
        for source in {s.name: s for fs in feature_sets for s in fs.sources}.values():
            table = log.read(source)
            if cutoff is not None:
                known = pc.less(table.column(RECORDED_AT).cast(pa.int64()), datetime_to_us(cutoff))
                table = table.filter(known)
            if bulk:
                online_log.append(source, table)
                continue
            order = list(range(table.num_rows))
            rng.shuffle(order)
            size = rng.randint(1, 4)
            for start in range(0, len(order), size):
                piece = table.take(pa.array(order[start : start + size], pa.int64()))
                pushed.append((source.name, piece))
        online.materialize()
        rng.shuffle(pushed)
        for name, piece in pushed:
            online.push_canonical(name, piece)
        return _OnlineSession(online, feature_sets, cleanup)


# -- Spark ------------------------------------------------------------------------------------


class SparkExecutor(Executor):
    """The Spark engine on the test session's ``local[2]`` SparkSession (``tests/spark``)."""

    examples = 5  # each example is a few Spark jobs; PARITY_HYPOTHESIS_EXAMPLES for more
    pytest_marks = (pytest.mark.spark,)

    def __init__(self, plan: str = "sweep", hot_key_versions: int = 4) -> None:
        self.plan = plan
        self.hot_key_versions = hot_key_versions
        self.name = "spark" if plan == "sweep" else f"spark-{plan}"

    def check_available(self) -> None:
        spark_or_skip()

    def load(self, workdir: Path, log: pt.FactLog, feature_sets: Sequence[pt.FeatureSet],
             cutoff: datetime | None, seed: int) -> Session:
        from parity.engines.spark import SparkEngine

        # a key with more than 4 versions is hot (the default): the catalog's cases and the
        # property test run both the time-bucketed path of hot keys and the plain one
        engine = SparkEngine(
            plan=self.plan, session=spark_session(), hot_key_versions=self.hot_key_versions
        )
        return _EngineSession(engine, log, feature_sets, cutoff)  # type: ignore[arg-type]


EXECUTORS: list[Executor] = [
    DuckDBExecutor("auto"),
    DuckDBExecutor("sweep"),
    DuckDBExecutor("join"),
    OnlineExecutor("memory"),
    OnlineExecutor("sqlite"),
    OnlineExecutor("redis"),
    SparkExecutor(),
]
