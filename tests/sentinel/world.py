"""A small synthetic world for the sentinel tests: definitions, rows with labels, models.

Members have activity features; the label (say, "converted") follows a known logistic model
of them, so a model fitted on one sample and scored on another behaves like a real one.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pyarrow as pa

import parity as pt
from parity.predictor import Predictor
from tests.sentinel.models import NumpyLogit

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=timezone.utc)
member = pt.Entity("member", keys={"member": int})
plays = pt.EventSource("plays", entity=member, schema={"minutes": float})
profiles = pt.StateSource("profiles", entity=member, schema={"country": str, "age": int})
conversions = pt.EventSource("conversions", entity=member, schema={"value": float})
member_features = pt.FeatureSet(
    "member_features",
    entity=member,
    features=[
        pt.Aggregate("plays_7d", plays, "count", window="7d"),
        pt.Aggregate("minutes_7d", plays, "sum", "minutes", window="7d"),
        pt.Aggregate("max_minutes_7d", plays, "max", "minutes", window="7d"),
        pt.Lookup("country", profiles, "country"),
        pt.Lookup("age", profiles, "age"),
    ],
)
FEATURE_SETS = {member_features.name: member_features}
FEATURES = ["plays_7d", "minutes_7d", "max_minutes_7d", "country", "age"]
COUNTRIES = ["NL", "BR", "US", "IN", "DE"]


def rows(n: int, seed: int, *, minutes_scale: float = 1.0, start: datetime | None = None,
         members: int = 5_000) -> pa.Table:
    """``n`` labelled rows: keys, ``at``, the features and ``label`` (0/1)."""
    rng = np.random.default_rng(seed)
    plays_7d = rng.poisson(6, n)
    minutes = np.round(rng.gamma(2.0, 20.0, n) * (plays_7d > 0) * minutes_scale, 2)
    max_minutes = np.round(minutes * rng.uniform(0.2, 0.8, n), 2)
    country = rng.choice(COUNTRIES, n, p=[0.3, 0.25, 0.2, 0.15, 0.1])
    age = rng.integers(18, 70, n)
    effect = {"NL": 0.3, "BR": -0.2, "US": 0.1, "IN": -0.4, "DE": 0.0}
    logit = (-1.2 + 0.12 * plays_7d + 0.012 * minutes / minutes_scale - 0.015 * (age - 40)
             + np.array([effect[c] for c in country]))
    label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    first = start or (NOW - timedelta(days=3))
    at = [first + timedelta(seconds=int(s)) for s in np.sort(rng.integers(0, 2 * 86_400, n))]
    return pa.table({
        "member": pa.array(rng.integers(0, members, n), pa.int64()),
        "at": pa.array(at, pa.timestamp("us", tz="UTC")),
        "plays_7d": pa.array(plays_7d, pa.int64()),
        "minutes_7d": pa.array(minutes, pa.float64()),
        "max_minutes_7d": pa.array(max_minutes, pa.float64()),
        "country": pa.array(country.tolist(), pa.string()),
        "age": pa.array(age, pa.int64()),
        "label": pa.array(label, pa.int64()),
    })


def fit(table: pa.Table, features: list[str] | None = None,
        feature_sets: Any = None) -> Predictor:
    """A Predictor around a NumpyLogit fitted on ``table``."""
    names = features or FEATURES
    shell = Predictor(NumpyLogit(), names, categories={"country": COUNTRIES},
                      feature_sets=feature_sets if feature_sets is not None
                      else [member_features])
    X = shell.encode(table)
    y = np.asarray(table.column("label").to_numpy(), dtype=np.float64)
    # One-hot would be better for country; the index is enough for these tests.
    shell.model.fit(X, y)
    return shell


def wrap(predictor: Predictor, model: Any) -> Predictor:
    """The same encoding and feature sets, another model."""
    return Predictor(model, predictor.features, categories=predictor.categories,
                     feature_sets=predictor.feature_set_versions)
