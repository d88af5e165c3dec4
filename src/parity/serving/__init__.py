"""Serving: the prediction service, its model slots with hot swap, and the HTTP app.

Modules: ``service`` (checks, features, predictor, logging), ``validation`` (the edge checks
from the definitions), ``config`` (the ``serving:`` section), ``slot`` (hot swap), ``health``
(/health and metrics), ``app`` (FastAPI), ``factory`` (workspace wiring), ``protocols`` (what
serving needs of the registry, the online store and the feature log). See docs/serving.md.
"""

from parity.serving.config import ServingConfig
from parity.serving.service import Context, Features, Prediction, PredictionService
from parity.serving.slot import ModelSlot
from parity.serving.validation import Limits, RequestSchema

__all__ = ["Context", "Features", "Limits", "ModelSlot", "Prediction", "PredictionService",
           "RequestSchema", "ServingConfig"]
