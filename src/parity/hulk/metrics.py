"""Lookup and fallback counters, in Prometheus when ``prometheus-client`` is installed.

The counters are module-level (a Prometheus registry refuses a metric name twice), labelled
by publication. Every reader also keeps its own plain counts (``PublicationReader.stats``).
"""

from __future__ import annotations

from typing import Any

try:
    from prometheus_client import Counter

    LOOKUPS: Any = Counter("parity_publication_lookups", "Publication key lookups by outcome",
                           ["publication", "outcome"])
    FALLBACKS: Any = Counter("parity_publication_fallbacks",
                             "Keys answered by a fallback, by reason", ["publication", "reason"])
    SHADOW: Any = Counter("parity_publication_shadow_comparisons",
                          "Shadow comparisons with the previous version, by result",
                          ["publication", "result"])
except ImportError:  # pragma: no cover - the serve extra is not installed
    LOOKUPS = FALLBACKS = SHADOW = None


def count(metric: Any, amount: int, **labels: str) -> None:
    """Add ``amount`` to ``metric`` with ``labels`` (nothing without prometheus-client)."""
    if metric is not None and amount:
        metric.labels(**labels).inc(amount)
