"""Deterministic feature log records for tests, benchmarks and the crash-test subprocess."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from parity.featurelog import FeatureLogRecord

T0 = datetime(2024, 3, 1, tzinfo=timezone.utc)


def make_record(i: int, *, member: int | None = None, n_features: int = 20,
                at: datetime | None = None, model: str = "ctr") -> FeatureLogRecord:
    """Record number ``i``: ~20 features of every allowed type, all derived from ``i``."""
    features: dict[str, object] = {}
    for j in range(n_features - 4):
        kind = j % 4
        if kind == 0:
            features[f"f{j}"] = i * 0.5 + j / 3
        elif kind == 1:
            features[f"f{j}"] = i * 7 + j
        elif kind == 2:
            features[f"f{j}"] = f"v{(i + j) % 13}"
        else:
            features[f"f{j}"] = None if i % 5 == 0 else (i + j) % 2 == 0
    features["recent"] = [float(i), float(i + 1), float(i + 2)]
    features["last_seen"] = T0 - timedelta(minutes=i % 97)
    features["country"] = "NL" if i % 2 else "BR"
    features["ratio"] = 1 / (i + 1)
    return FeatureLogRecord(
        request_id=f"r{i}",
        logged_at=at if at is not None else T0 + timedelta(seconds=i),
        model=model,
        model_version=3,
        feature_set_versions={"member_activity": "a1b2c3"},
        keys={"member": member if member is not None else i % 100},
        features=features,  # type: ignore[arg-type]
        request={"device": "ios" if i % 3 else "web", "page": i % 4},
        output=round(1 / (i + 2), 6),
    )
