"""How a model becomes artifact bytes and back: a signed envelope around a non-executable format.

An artifact file is::

    b"PARITYA1"                      8 bytes, magic and layout version
    tag                              32 bytes, HMAC-SHA256 of everything after it
    header length                    4 bytes, big-endian
    header                           JSON: formats, wrapper state, the signing key's id
    payload                          the model's bytes in the format the header names

Model formats (the header's ``model.format``):

    skops               scikit-learn estimators, loaded with an explicit list of trusted types
    lightgbm-*          LightGBM's own text format (see ``lgbm.py``)
    pickle              anything else, only when the registry allows pickle (runs code on load)

``verify`` checks the tag before anything is parsed beyond the fixed prefix; ``decode`` only
ever sees verified bytes. Parity's wrappers (the ``Predictor``) are stored as JSON state in the
header around the inner model (see ``wrappers.py``), never pickled.
"""

from __future__ import annotations

import io
import json
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parity.errors import ModelSerializationError
from parity.registry import lgbm
from parity.registry.model import Model, check_model
from parity.registry.signing import Signer, unsigned_error
from parity.registry.wrappers import restore_wrapper, wrapper_state

MAGIC = b"PARITYA1"
_TAG = 32
_PREFIX = len(MAGIC) + _TAG + 4
PICKLE_PROTOCOL = 5
SKOPS, PICKLE = "skops", "pickle"
LIGHTGBM_FORMATS = (lgbm.BOOSTER, lgbm.CLASSIFIER, lgbm.REGRESSOR)
FORMATS = (SKOPS, *LIGHTGBM_FORMATS, PICKLE)

# Types a skops file may hold beyond skops' own defaults. scikit-learn classes are trusted by
# module (an estimator's state is arrays and numbers); numpy and scipy only by exact name.
_TRUSTED_PREFIXES = ("sklearn.",)
_TRUSTED_EXACT = frozenset({
    "numpy.dtype",
    "numpy.ndarray",
    "numpy.float64",
    "numpy.float32",
    "numpy.int64",
    "numpy.int32",
    "numpy.bool_",
    "numpy.str_",
    "numpy.random.mtrand.RandomState",
    "numpy.random._mt19937.MT19937",
    "numpy.random._pcg64.PCG64",
    "numpy.random._generator.Generator",
    "numpy.random.bit_generator.SeedSequence",
    "scipy.sparse._csr.csr_matrix",
    "scipy.sparse._csc.csc_matrix",
    "scipy.sparse._csr.csr_array",
    "scipy.sparse._csc.csc_array",
    "collections.OrderedDict",
    "collections.defaultdict",
})

PICKLE_REFUSED = (
    "pickle runs arbitrary code when it is loaded, so whoever can write the artifact store or "
    "the metadata database could run code on every machine that loads the model"
)


@dataclass(frozen=True)
class Envelope:
    """A verified artifact: its header (JSON) and payload (the model's bytes)."""

    header: dict[str, Any]
    payload: bytes

    @property
    def model_format(self) -> str:
        """The payload's format (one of ``FORMATS``)."""
        return str(self.header.get("model", {}).get("format", "?"))


def encode(model: object, signer: Signer, *, allow_pickle: bool = False) -> bytes:
    """The signed artifact bytes of ``model`` (a model or a parity ``Predictor``).

    scikit-learn estimators become skops, LightGBM models LightGBM text; anything else is
    refused with ``ModelSerializationError`` unless ``allow_pickle``.
    """
    check_model(model)
    wrapped = None if allow_pickle and _needs_pickle(model) else wrapper_state(model)
    inner: object = model
    header: dict[str, Any] = {"layout": 1, "key_id": signer.key_id}
    if wrapped is not None:
        name, state, inner = wrapped
        header["wrapper"] = {"name": name, "state": state}
    fmt, meta, payload = _dump_model(inner, allow_pickle=allow_pickle)
    header["model"] = {"format": fmt, "type": _type_name(inner), **meta}
    try:
        header_bytes = json.dumps(header, sort_keys=True, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as err:
        raise ModelSerializationError(
            f"the {_type_name(model)} model's metadata is not JSON-compatible ({err}); use "
            f"plain strings and numbers for features, categories and feature sets"
        ) from err
    body = struct.pack(">I", len(header_bytes)) + header_bytes + payload
    return MAGIC + signer.sign(body) + body


def verify(data: bytes, signer: Signer, *, what: str, sha256: str = "",
           path: Path | None = None) -> Envelope:
    """Check the signature of artifact bytes and split them; nothing is deserialised.

    Raises ``ArtifactIntegrityError`` for an unsigned file (e.g. a pickle from an older parity
    or one placed by someone else) or a tag made with another key.
    """
    if not data.startswith(MAGIC):
        legacy = data[:2] in (b"\x80\x04", b"\x80\x05", b"\x80\x03", b"\x80\x02")
        why = (
            "it is a plain pickle, as older parity versions wrote; it is never unpickled"
            if legacy
            else "it has no parity signature"
        )
        raise unsigned_error(what, path, sha256, why)
    if len(data) < _PREFIX:
        raise unsigned_error(what, path, sha256, "it is truncated")
    tag, body = data[len(MAGIC) : len(MAGIC) + _TAG], data[len(MAGIC) + _TAG :]
    if not signer.verify(body, tag):
        raise unsigned_error(
            what, path, sha256, f"its signature does not match the key {signer.key_id}"
        )
    (length,) = struct.unpack(">I", body[:4])
    try:
        header = json.loads(body[4 : 4 + length].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:  # signed, so our own bug
        raise ModelSerializationError(f"the artifact of {what} has a damaged header") from err
    return Envelope(header, body[4 + length :])


def check_loadable(envelope: Envelope, *, allow_pickle: bool, what: str) -> None:
    """Raise ``ModelSerializationError`` if this registry would refuse to deserialise it."""
    fmt = envelope.model_format
    if fmt == PICKLE and not allow_pickle:
        raise ModelSerializationError(
            f"{what} is stored as a pickle, and this registry does not allow pickle: "
            f"{PICKLE_REFUSED}. Register it again in a safe format (scikit-learn via skops, "
            f"LightGBM as text), or opt in with `registry: {{allow_pickle: true}}` in "
            f"parity.yaml (open_registry(..., allow_pickle=True)) if you trust every writer"
        )
    if fmt not in FORMATS:
        raise ModelSerializationError(
            f"{what} has artifact format {fmt!r}, which this parity cannot read; upgrade parity"
        )


def decode(envelope: Envelope, *, allow_pickle: bool, what: str) -> Model:
    """The model held by a verified envelope (see ``verify``)."""
    check_loadable(envelope, allow_pickle=allow_pickle, what=what)
    meta = envelope.header["model"]
    fmt = meta["format"]
    try:
        if fmt == SKOPS:
            inner = _load_skops(envelope.payload, what, meta.get("trusted"))
        elif fmt == PICKLE:
            # Reached only with the documented allow_pickle opt-in (check_loadable above) and
            # after verify() checked the sha256 and the HMAC under a key outside the metadata
            # database: bytes from anyone without that key never get here.
            inner = pickle.loads(envelope.payload)
        else:
            inner = lgbm.load_lightgbm(fmt, meta, envelope.payload)
    except ModelSerializationError:
        raise
    except Exception as err:  # loaders raise many types (ImportError, ValueError, ...)
        raise ModelSerializationError(
            f"could not load {what} ({fmt}): {type(err).__name__}: {err}. The packages that "
            f"define the model must be installed here in compatible versions"
        ) from err
    wrapper = envelope.header.get("wrapper")
    model = inner if wrapper is None else restore_wrapper(wrapper["name"], wrapper["state"], inner)
    return check_model(model)


def skops_trusted(untrusted: list[str], what: str) -> list[str]:
    """The types to pass to ``skops.io.load(trusted=...)``; refuses any outside the allow-list."""
    refused = [name for name in untrusted if not _is_trusted(name)]
    if refused:
        raise ModelSerializationError(
            f"{what} holds type(s) {', '.join(sorted(refused))}, which are not on parity's "
            f"allow-list of scikit-learn, numpy and scipy types, so it is not stored or loaded "
            f"with skops. Use plain scikit-learn estimators, or opt in to pickle "
            f"(allow_pickle=True) if you trust every writer of the registry"
        )
    return list(untrusted)


def _is_trusted(name: str) -> bool:
    if name in _TRUSTED_EXACT:
        return True
    last = name.rsplit(".", 1)[-1]
    # Classes only (CamelCase): a function named in a skops file could be called at predict.
    return name.startswith(_TRUSTED_PREFIXES) and last[:1].isupper() and "._testing" not in name


def _dump_model(model: object, *, allow_pickle: bool) -> tuple[str, dict[str, Any], bytes]:
    if lgbm.is_lightgbm(model):
        kind, meta, data = lgbm.dump_lightgbm(model)
        return kind, meta, data
    if type(model).__module__.startswith("sklearn."):
        try:
            data, trusted = _dump_skops(model)
            return SKOPS, {"trusted": trusted}, data
        except ModelSerializationError:
            if not allow_pickle:
                raise
    if not allow_pickle:
        raise ModelSerializationError(
            f"a {_type_name(model)} model cannot be stored in a format that runs no code "
            f"(parity stores scikit-learn estimators with skops and LightGBM models as text), "
            f"and pickle is not allowed: {PICKLE_REFUSED}. Wrap a scikit-learn or LightGBM "
            f"model, or opt in with open_registry(..., allow_pickle=True) / `registry: "
            f"{{allow_pickle: true}}` in parity.yaml"
        )
    try:
        return PICKLE, {}, pickle.dumps(model, protocol=PICKLE_PROTOCOL)
    except Exception as err:  # pickling raises many types (PicklingError, TypeError, ...)
        raise ModelSerializationError(
            f"could not pickle the {_type_name(model)} model: {err}. Define classes and "
            f"functions at module level (no lambdas or local classes) and drop open handles"
        ) from err


def _dump_skops(model: object) -> tuple[bytes, list[str]]:
    """The canonical skops bytes of ``model`` and the (allow-listed) types it needs trusted."""
    import skops.io as sio

    label = f"the {_type_name(model)} model"
    try:
        data = _canonical_skops(sio.dumps(model))
    except Exception as err:  # skops raises TypeError/NotImplementedError for odd objects
        raise ModelSerializationError(
            f"skops cannot store {label}: {type(err).__name__}: {err}"
        ) from err
    trusted = skops_trusted(sio.get_untrusted_types(data=data), label)
    _load_skops(data, label, trusted)  # a model that cannot be loaded back is not registered
    return data, trusted


def _canonical_skops(data: bytes) -> bytes:
    """The same skops file with deterministic bytes: the same model gives the same artifact.

    skops names objects and array files by ``id()`` (a memory address) and stamps zip entries
    with the current time, so two dumps of one model differ. Ids are renumbered in order of
    first appearance (equal ids stay equal, so shared objects stay shared), files renamed to
    match, and entries written sorted with a fixed timestamp.
    """
    source = zipfile.ZipFile(io.BytesIO(data))
    schema = json.loads(source.read("schema.json"))
    ids: dict[int, int] = {}
    renamed: dict[str, str] = {}

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            out = {}
            for key, value in node.items():
                if key == "__id__" and isinstance(value, int):
                    value = ids.setdefault(value, len(ids) + 1)
                elif key == "file" and isinstance(value, str):
                    stem, dot, ext = value.partition(".")
                    if stem.isdigit():
                        new = f"{ids.setdefault(int(stem), len(ids) + 1)}{dot}{ext}"
                        renamed[value] = new
                        value = new
                else:
                    value = walk(value)
                out[key] = value
            return out
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    canonical = walk(schema)
    entries = {"schema.json": json.dumps(canonical, sort_keys=False).encode("utf-8")}
    for info in source.infolist():
        if info.filename != "schema.json":
            entries[renamed.get(info.filename, info.filename)] = source.read(info.filename)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as target:
        for name in sorted(entries):
            target.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), entries[name])
    return out.getvalue()


def _load_skops(data: bytes, what: str, trusted: list[str] | None = None) -> Any:
    """Load skops bytes trusting only allow-listed types.

    ``trusted`` is the list recorded in the (signed) header at registration; it is checked
    against the allow-list again, and skops refuses any type in the file outside it. Without
    it the file is scanned for its types (as slow as the load itself).
    """
    import skops.io as sio

    if trusted is None:
        trusted = sio.get_untrusted_types(data=data)
    return sio.loads(data, trusted=skops_trusted(list(trusted), what))


def _needs_pickle(model: object) -> bool:
    """Whether a wrapper must be pickled whole (opt-in only): a function as its output."""
    try:
        wrapper_state(model)
    except ModelSerializationError:
        return True
    return False


def _type_name(model: object) -> str:
    return f"{type(model).__module__}.{type(model).__qualname__}"
