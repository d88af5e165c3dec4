"""The attack of issue 9: whoever can write the metadata database (not the code, not the signing
key) rewrites versions' sha256 to point at a malicious pickle they placed in the artifact store.
The payload must not run on load, on serve (building the serving slot), on promote or rollback,
nor in `parity sentinel check`'s artifact check. It writes a marker file if it ever runs."""

from __future__ import annotations

import hashlib
import os
import pickle
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

import parity
from parity.cli.app import main
from parity.errors import ArtifactIntegrityError
from parity.registry import Registry
from parity.sentinel import VerdictStore
from parity.sentinel.isolation import IsolatedLoad, Refused
from parity.serving.slot import ModelSlot
from tests.registry.services import drop_schema, new_schema_name, postgres_or_skip

MODEL = "churn"


class Malicious:
    """Unpickling it runs a shell command that creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))

    def predict(self, X: Any) -> Any:
        return X


@dataclass
class Attacked:
    root: Path
    registry: Registry
    marker: Path
    payload: bytes
    backend: str


def _model(factor: float) -> Any:
    from sklearn.linear_model import LinearRegression

    return LinearRegression().fit(np.array([[0.0], [1.0]]), np.array([0.0, factor]))


def _configure(root: Path, url: str | None, allow_pickle: bool) -> None:
    config = root / "parity.yaml"
    lines = [line for line in config.read_text().splitlines()
             if not line.startswith("registry:")]
    lines += ["registry:", f"  url: {url or 'sqlite'}",
              f"  allow_pickle: {'true' if allow_pickle else 'false'}"]
    config.write_text("\n".join(lines) + "\n")


def _rewrite_metadata(registry: Registry, backend: str, versions: list[int], sha: str,
                      size: int, schema: str | None, url: str | None) -> None:
    """What the attacker does with write access to the metadata database, and nothing more."""
    sql = ("UPDATE registry_versions SET artifact_sha256 = {p}, artifact_size = {p} "
           "WHERE name = {p} AND version = {p}")
    if backend == "sqlite":
        import sqlite3

        with sqlite3.connect(registry.path) as conn:  # type: ignore[attr-defined]
            for version in versions:
                conn.execute(sql.format(p="?"), (sha, size, MODEL, version))
        return
    import psycopg

    assert url is not None
    with psycopg.connect(url, autocommit=True, options=f"-c search_path={schema}") as pg:
        for version in versions:
            pg.execute(sql.format(p="%s"), (sha, size, MODEL, version))  # type: ignore[arg-type]


@pytest.fixture(params=[
    ("sqlite", False),
    ("sqlite", True),  # even with the pickle opt-in, an unsigned pickle never runs
    pytest.param(("postgres", True), marks=pytest.mark.services),
], ids=["sqlite", "sqlite-allow-pickle", "postgres-allow-pickle"])
def attacked(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Attacked]:
    backend, allow_pickle = request.param
    root = parity.init(tmp_path / "ws")
    url = schema = plain = None
    if backend == "postgres":
        server = postgres_or_skip()
        schema = new_schema_name()
        url = f"{server}{'&' if '?' in server else '?'}schema={schema}"
        plain = server
    _configure(root, url, allow_pickle)
    registry = parity.open(root).registry
    for factor in (2.0, 3.0, 4.0):
        registry.register(MODEL, _model(factor), feature_sets={}, code_dir=tmp_path)
    registry.set_alias(MODEL, "live", 1)
    registry.set_alias(MODEL, "live", 2)  # history 1 -> 2: a rollback would go to 1
    registry.set_alias(MODEL, "candidate", 3)

    marker = tmp_path / "PWNED"
    payload = pickle.dumps(Malicious(marker), protocol=5)
    sha = hashlib.sha256(payload).hexdigest()
    # The attacker drops the pickle into the artifact store, named by its hash...
    target = registry.artifacts.root / "sha256" / sha[:2] / sha
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(payload)
    # ...and points versions 1 (rollback target) and 3 (the candidate) at it.
    _rewrite_metadata(registry, backend, [1, 3], sha, len(payload), schema, plain)
    assert registry.get(MODEL, 3).artifact_sha256 == sha
    try:
        yield Attacked(root, registry, marker, payload, backend)
    finally:
        if plain is not None and schema is not None:
            drop_schema(plain, schema)


def test_the_payload_is_real(attacked: Attacked, tmp_path: Path) -> None:
    """Without parity in the way, loading the file runs the payload: the test can fail."""
    probe = tmp_path / "probe.pkl"
    probe.write_bytes(attacked.payload)
    code = f"import pickle; pickle.loads(open({str(probe)!r}, 'rb').read())"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert attacked.marker.exists()


def test_load_never_runs_the_payload(attacked: Attacked) -> None:
    for ref in (3, "candidate", 1):
        with pytest.raises(ArtifactIntegrityError, match="not signed with this registry's key"):
            attacked.registry.load(MODEL, ref)
    assert attacked.registry.load(MODEL, "live") is not None  # untouched versions still load
    assert not attacked.marker.exists()


def test_serving_never_runs_the_payload(attacked: Attacked) -> None:
    feature_sets = parity.open(attacked.root).definitions.feature_sets
    slot = ModelSlot(MODEL, attacked.registry, feature_sets, alias="candidate")
    report = slot.load()
    assert not report.ok and report.error is not None
    assert "ArtifactIntegrityError" in report.error and slot.current is None
    assert not attacked.marker.exists()


def test_promote_and_rollback_never_run_or_point_at_the_payload(attacked: Attacked) -> None:
    registry = attacked.registry
    with pytest.raises(ArtifactIntegrityError):
        registry.set_alias(MODEL, "live", 3)
    with pytest.raises(ArtifactIntegrityError):
        registry.rollback(MODEL, "live")  # would move live back to the poisoned version 1
    assert registry.aliases(MODEL)["live"] == 2
    result = CliRunner().invoke(
        main, ["--workspace", str(attacked.root), "models", "promote", MODEL, "3"]
    )
    assert result.exit_code == 2 and "not signed" in " ".join(result.output.split())
    assert "Traceback" not in result.output
    assert registry.aliases(MODEL)["live"] == 2
    assert not attacked.marker.exists()


def test_sentinel_check_never_deserialises_the_payload(attacked: Attacked) -> None:
    result = CliRunner().invoke(
        main, ["--workspace", str(attacked.root), "sentinel", "check", f"{MODEL}@3"]
    )
    assert "Traceback" not in result.output, result.output
    verdict = VerdictStore(
        Path(attacked.registry.artifacts.root).resolve().parent / "sentinel"
    ).load(MODEL, 3)
    assert verdict is not None, result.output
    artifact = verdict.result("artifact")
    assert artifact.status == "fail" and "artifact.integrity" in artifact.codes, artifact.reason
    assert verdict.status == "fail"
    assert attacked.registry.aliases(MODEL)["live"] == 2
    assert not attacked.marker.exists()


def test_the_isolated_loader_refuses_unverified_bytes(attacked: Attacked) -> None:
    sha = attacked.registry.get(MODEL, 3).artifact_sha256
    refused = IsolatedLoad.verified(attacked.registry.artifacts, sha).start()
    assert isinstance(refused, Refused)
    assert refused.wait().kind == "integrity"
    no_reader = IsolatedLoad.verified(None, sha).start()
    assert isinstance(no_reader, Refused) and no_reader.wait().kind == "integrity"
    assert not attacked.marker.exists()


def test_a_signed_skops_predictor_loads_and_predicts_in_the_child(tmp_path: Path) -> None:
    """The safe path still works end to end: verified in the parent, loaded by the child."""
    import pyarrow as pa

    from parity.predictor import Predictor
    from parity.registry import open_registry

    registry = open_registry(f"sqlite://{tmp_path / 'r.db'}", tmp_path / "artifacts")
    predictor = Predictor(_model(2.0), ["x"], output="raw")
    mv = registry.register(MODEL, predictor, feature_sets={}, code_dir=tmp_path)
    sample = pa.table({"x": [1.0, 2.0, 3.0]})
    run = IsolatedLoad.verified(registry.artifacts, mv.artifact_sha256, sample,
                                timeout=120, memory_mb=2048).start().wait()
    assert run.kind == "ok", (run.message, run.stderr_tail)
    assert run.outputs["outputs"] == 3 and run.outputs["max"] == pytest.approx(6.0)
    assert run.predictor["features"] == ["x"]
