"""Hulk: precompute every key offline, publish versions atomically, validate before and after
the swap, and look keys up with declared fallbacks.

    from parity.hulk import Keys, Precompute, Fallback, open_publications, publish

    job = Precompute("churn", keys=Keys.from_source("purchases"), fn=predictor,
                     feature_sets=["customer_features"])
    report = publish(ws, job, fallback=Fallback.compute(), model="churn@3")
    pubs = open_publications(ws)
    pubs.lookup("churn", 12347)

Modules: ``values`` (keys and outputs), ``stores`` (memory, SQLite, Redis behind one
Protocol), ``manifest``, ``validation`` (before the swap), ``publisher`` (write, swap,
rollback, GC), ``reader`` (lookup, fallbacks), ``shadow`` (after the swap), ``fallback``,
``precompute``, ``workspace`` (wiring and lineage), ``http`` (a FastAPI router).
See docs/hulk.md.
"""

from parity.hulk.fallback import Computer, Fallback, OnDemand
from parity.hulk.manifest import Manifest, OutputSummary
from parity.hulk.precompute import Keys, Precompute
from parity.hulk.publications import Publications
from parity.hulk.publisher import Publisher, PublishReport
from parity.hulk.reader import LookupResult, PublicationReader
from parity.hulk.shadow import ShadowPolicy
from parity.hulk.stores import PublicationStore, open_publication_store
from parity.hulk.validation import ValidationPolicy, ValidationReport
from parity.hulk.workspace import open_publications, publish

__all__ = [
    "Computer",
    "Fallback",
    "Keys",
    "LookupResult",
    "Manifest",
    "OnDemand",
    "OutputSummary",
    "Precompute",
    "PublicationReader",
    "PublicationStore",
    "Publications",
    "PublishReport",
    "Publisher",
    "ShadowPolicy",
    "ValidationPolicy",
    "ValidationReport",
    "open_publication_store",
    "open_publications",
    "publish",
]
