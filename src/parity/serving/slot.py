"""A model slot: the version a service serves now, swapped atomically for a new one.

Requests read the slot's current ``Loaded`` once and use that object to the end, so an
in-flight request finishes on the model it started with while a swap happens. A new version is
loaded, checked against the current definitions (the skew guard) and warmed up before the swap;
if any step fails the old version keeps serving and the failure is recorded.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from parity.definitions import FeatureSet
from parity.errors import NotFoundError
from parity.predictor import Predictor, as_predictor
from parity.serving.protocols import ModelRegistry


@dataclass(frozen=True)
class Loaded:
    """One loaded, checked and warmed model version."""

    name: str
    version: int
    predictor: Predictor
    loaded_at: float


@dataclass
class SwapReport:
    """The outcome of the last attempt to load a version."""

    version: int | None
    ok: bool
    error: str | None
    seconds: float


class ModelSlot:
    """Holds the served version of one model and swaps it without dropping requests."""

    def __init__(
        self,
        name: str,
        registry: ModelRegistry,
        feature_sets: Mapping[str, FeatureSet],
        warmup_rows: Callable[[Predictor], Sequence[Mapping[str, Any]]] | None = None,
        alias: str = "live",
    ) -> None:
        self.name = name
        self.alias = alias
        self.registry = registry
        self.feature_sets = dict(feature_sets)
        self.warmup_rows = warmup_rows or (lambda p: [p.example_row()])
        self.current: Loaded | None = None
        self.last_swap: SwapReport | None = None
        self.swaps = 0
        self._lock = threading.Lock()

    def load(self, version: int | None = None) -> SwapReport:
        """Load ``version`` (default: what the alias points at), check, warm up, swap in.

        Serialised: two concurrent loads never interleave. On failure the current version stays.
        """
        with self._lock:
            started = time.perf_counter()
            try:
                if version is None:
                    version = self.registry.get(self.name, self.alias).version
                if self.current is not None and self.current.version == version:
                    return SwapReport(version, True, None, 0.0)
                meta = self.registry.get(self.name, version)
                model = self.registry.load(self.name, version)
                used = [self.feature_sets[n] for n in meta.feature_sets if n in self.feature_sets]
                predictor = as_predictor(model, used)
                if not predictor.feature_set_versions:
                    predictor.feature_set_versions = dict(meta.feature_sets)
                predictor.check_definitions(self.feature_sets)
                predictor.predict_rows(list(self.warmup_rows(predictor)))
                self.current = Loaded(self.name, int(version), predictor, time.time())
                self.swaps += 1
                report = SwapReport(version, True, None, time.perf_counter() - started)
            except Exception as exc:  # any failure leaves the old model serving
                report = SwapReport(version, False, f"{type(exc).__name__}: {exc}",
                                    time.perf_counter() - started)
            self.last_swap = report
            return report

    def target_version(self, raise_errors: bool = False) -> int | None:
        """The version the alias points at now, or None if the alias is not set.

        A registry that cannot be read also gives None, unless ``raise_errors`` (the alias
        watcher wants to see the error, count it and back off).
        """
        try:
            target = self.registry.aliases(self.name).get(self.alias)
        except NotFoundError:
            return None
        except Exception:
            if raise_errors:
                raise
            return None
        return None if target is None else int(target)
