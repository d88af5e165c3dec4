"""What a check looks at: plain inputs, independent of the registry, feature log and store.

The gate fills a ``CheckContext`` from the workspace; tests fill it by hand. Predictions are
computed once per model and shared by the checks (``scores``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from parity.definitions import FeatureSet
from parity.errors import InputTypeError, NotFoundError, ScoringError
from parity.sentinel.config import SentinelConfig
from parity.sentinel.isolation import ArtifactReader
from parity.sentinel.verdict import CheckResult
from parity.sentinel.window import ShadowWindow

CANDIDATE, LIVE, ANCHOR = "candidate", "live", "anchor"


@dataclass
class ArtifactRef:
    """Where the candidate's artifact lives and the sha256 the registry recorded for it.

    ``reader`` (the registry's artifact store) verifies sha256 and signature; without it the
    artifact check refuses the artifact rather than deserialise an unverified file.
    """

    path: Path
    sha256: str
    reader: ArtifactReader | None = None


@dataclass
class CheckContext:
    """Everything the checks of one candidate may use. Every input except ``model`` is optional;
    a check whose input is missing says so (``not_enough_data`` or ``skipped``).

    - ``candidate`` / ``live`` / ``anchor``: loaded predictors (the candidate only after its
      artifact passed in isolation); ``*_version`` their version numbers.
    - ``artifact``: the candidate's artifact file and recorded hash.
    - ``registered_feature_sets``: feature set versions the registry recorded for the candidate.
    - ``feature_sets``: the current definitions (what serving computes).
    - ``online_types``: feature (and request field) name -> dtype available online; None: unknown.
    - ``shadow``: recent labelled real traffic (features, request fields, ``label``) that
      neither model trained on (see ``window``); ``shadow_note`` says why there is none;
      ``shadow_window`` how it was chosen.
    - ``traffic``: recent traffic, labelled or not (drift and latency need no labels).
    - ``training`` / ``live_training``: the candidate's and live's training rows.
    - ``identical_to_live``: the live version whose artifact is byte-identical, if any.
    - ``sources``: the sources the candidate depends on; ``freshness`` the latest
      ``recorded_at`` held for each (None: no data at all).
    - ``requirements``: other things the model declared it needs -> whether present.
    - ``now``: the moment of the check (aware UTC).
    """

    model: str
    version: int
    config: SentinelConfig = field(default_factory=SentinelConfig)
    now: datetime | None = None
    candidate: Any = None
    live: Any = None
    live_version: int | None = None
    anchor: Any = None
    anchor_version: int | None = None
    artifact: ArtifactRef | None = None
    registered_feature_sets: Mapping[str, str] | None = None
    feature_sets: Mapping[str, FeatureSet] | None = None
    online_types: Mapping[str, str] | None = None
    shadow: pa.Table | None = None
    shadow_note: str | None = None
    shadow_window: ShadowWindow | None = None
    traffic: pa.Table | None = None
    request_fields: list[str] = field(default_factory=list)
    label: str = "label"
    training: pa.Table | None = None
    live_training: pa.Table | None = None
    identical_to_live: int | None = None
    sources: list[str] = field(default_factory=list)
    freshness: Mapping[str, datetime | None] = field(default_factory=dict)
    requirements: Mapping[str, bool] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    results: dict[str, CheckResult] = field(default_factory=dict)
    pending: dict[str, Any] = field(default_factory=dict, repr=False)  # work started by prepare()
    _scores: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    _score_errors: dict[str, str] = field(default_factory=dict, repr=False)

    def predictor(self, which: str) -> Any:
        """The predictor called ``which`` (candidate, live or anchor), or None."""
        return {CANDIDATE: self.candidate, LIVE: self.live, ANCHOR: self.anchor}[which]

    def scores(self, which: str) -> np.ndarray:
        """The predictor's outputs on the shadow rows as float64 (cached).

        A predictor that raises, or whose outputs are not single numbers (class probability
        lists, top-k), raises ``ScoringError`` (a RuntimeError), the same on every call.
        """
        if which in self._score_errors:
            raise ScoringError(self._score_errors[which])
        if which not in self._scores:
            predictor = self.predictor(which)
            if predictor is None or self.shadow is None:
                raise NotFoundError(self.shadow_note if self.shadow is None and self.shadow_note
                                    else f"no {which} predictor or no shadow rows to score")
            try:
                outputs = predictor.predict_table(self.shadow)
                self._scores[which] = as_numbers(outputs)
            except Exception as err:
                self._score_errors[which] = f"scoring the {which} model raised " \
                                            f"{type(err).__name__}: {err}"
                raise ScoringError(self._score_errors[which]) from err
        return self._scores[which]

    def no_shadow_reason(self) -> str:
        """Why there are no labelled shadow rows, naming the true cause when it is known."""
        return self.shadow_note or ("no labelled shadow rows: the feature log has no recent "
                                    "predictions with known labels yet")

    def missing_features(self, which: str = CANDIDATE) -> list[str]:
        """Features the predictor reads that the shadow rows lack (the contract reports them)."""
        predictor = self.predictor(which)
        if predictor is None or self.shadow is None:
            return []
        return [f for f in getattr(predictor, "features", []) if f not in self.shadow.column_names]

    def labels(self) -> np.ndarray:
        """The shadow rows' labels as float64 (NaN where null)."""
        if self.shadow is None or self.label not in self.shadow.column_names:
            raise NotFoundError(f"the shadow rows have no {self.label!r} column")
        column = self.shadow.column(self.label).cast(pa.float64())
        return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)

    def candidate_features(self) -> list[str]:
        """The features the candidate reads (from the predictor, else the feature sets)."""
        if self.candidate is not None and hasattr(self.candidate, "features"):
            return list(self.candidate.features)
        names: list[str] = []
        for fs_name in self.registered_feature_sets or {}:
            fs = (self.feature_sets or {}).get(fs_name)
            if fs is not None:
                names += [f.name for f in fs.features]
        return names


@contextmanager
def scoring_threads(threads: int) -> Iterator[None]:
    """Cap BLAS/OpenMP thread pools at ``threads`` while scoring (0: leave them alone).

    A one-row predict that wakes a pool of threads per call measures the pool and the other
    processes on the machine, not the model (issue 8: a one-row HistGradientBoosting predict
    had a p99 of 5.6 s with all threads on a loaded machine, 70 ms with one).
    """
    if threads <= 0:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads):
        yield


def as_numbers(outputs: Any) -> np.ndarray:
    """Outputs that are one number per row as a float64 array; InputTypeError otherwise."""
    if isinstance(outputs, np.ndarray) and outputs.ndim == 1:
        return outputs.astype(np.float64)
    values = list(outputs)
    if values and isinstance(values[0], (list, tuple, dict)):
        raise InputTypeError(
            "the model returns several values per row (class probabilities or top-k); the "
            "sentinel's accuracy checks handle one number per row (a binary probability, a "
            "label or a regression value)"
        )
    try:
        return np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise InputTypeError(f"the model's outputs are not numbers: {err}") from err
