"""Parity's own wrapper objects (the ``Predictor``) stored as data: JSON state + the inner model.

Pickling a ``Predictor`` would pickle whatever it holds; instead its state (feature names,
categories, output, feature set versions...) is written as JSON in the artifact header and
its inner model goes through the model codecs (skops, LightGBM text). Restoring builds the
class from an allow-list by name, never by importing a name found in the file.

A wrapper class may define ``to_artifact_state() -> dict`` and a classmethod
``from_artifact_state(state, model)``; the registry then uses those (JSON-compatible state).
Without them, the ``Predictor`` attributes known below are stored, and a Predictor holding any
other attribute is refused rather than stored without it (that would be silent skew).
"""

from __future__ import annotations

from typing import Any

from parity.errors import ModelSerializationError

PREDICTOR = "parity.predictor.Predictor"
# The Predictor's attributes as of this writing; anything else needs to_artifact_state().
_KNOWN_ATTRIBUTES = {"model", "features", "output", "categories", "k", "feature_set_versions"}


def wrapper_state(obj: object) -> tuple[str, dict[str, Any], object] | None:
    """``(wrapper name, JSON state, inner model)`` for a parity wrapper, or None for a model."""
    from parity.predictor import Predictor

    if type(obj) is not Predictor:
        return None
    hook = getattr(obj, "to_artifact_state", None)
    if callable(hook):
        try:
            state = dict(hook())
        except ModelSerializationError as err:
            raise ModelSerializationError(
                f"{err}; or opt in to pickle (allow_pickle=True), which runs code on load"
            ) from err
        return PREDICTOR, state, obj.model
    unknown = sorted(set(vars(obj)) - _KNOWN_ATTRIBUTES)
    if unknown:
        raise ModelSerializationError(
            f"the Predictor holds attribute(s) {', '.join(unknown)} that the registry does not "
            f"know how to store as data; give Predictor to_artifact_state()/"
            f"from_artifact_state() (see parity.registry.wrappers)"
        )
    if not isinstance(obj.output, str):
        raise ModelSerializationError(
            f"the Predictor's output is a function ({getattr(obj.output, '__name__', obj.output)}"
            f"), which cannot be stored as data: use one of the named outputs (probability, "
            f"label, raw, top_k), or opt in to pickle (allow_pickle=True), which runs code on "
            f"load"
        )
    state = {
        "features": list(obj.features),
        "output": obj.output,
        "categories": {name: list(values) for name, values in obj.categories.items()},
        "k": int(obj.k),
        "feature_sets": dict(obj.feature_set_versions),
    }
    return PREDICTOR, state, obj.model


def restore_wrapper(name: str, state: dict[str, Any], model: object) -> object:
    """The wrapper ``name`` (from the allow-list) around ``model``, with ``state``."""
    if name != PREDICTOR:
        raise ModelSerializationError(
            f"the artifact names wrapper {name!r}, which this parity does not know; upgrade "
            f"parity or register the model again"
        )
    from parity.predictor import Predictor

    hook = getattr(Predictor, "from_artifact_state", None)
    if callable(hook):
        return hook(state, model)
    try:
        return Predictor(
            model,
            state["features"],
            output=state["output"],
            categories=state["categories"],
            feature_sets=state["feature_sets"],
            k=state["k"],
        )
    except (KeyError, TypeError) as err:
        raise ModelSerializationError(
            f"the artifact's Predictor state is incomplete ({err}); register the model again"
        ) from err
