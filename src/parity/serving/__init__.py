"""Serving: the prediction service, its model slots with hot swap, and the HTTP app."""

from parity.serving.service import Context, Prediction, PredictionService
from parity.serving.slot import ModelSlot

__all__ = ["Context", "ModelSlot", "Prediction", "PredictionService"]
