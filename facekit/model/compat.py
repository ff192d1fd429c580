"""Keras version compatibility of saved ``.keras`` files: the one table of config keys that newer Keras
writes and older Keras cannot read.

Keras writes every constructor argument of a layer (and of its initializers)
into the file's ``config.json``, at its default value too, and an older Keras
whose class lacks that argument refuses the whole file ("could not be
deserialized"). Measured: every file saved by Keras 3.15.1 failed to load on
3.14.1, 3.13.2 (Colab), 3.10.0 and 3.8.0, and loaded on all of them, with
identical predictions, once exactly these keys were removed.

A key is removed only while it holds its default, which is what the older
Keras assumes anyway, so the file means the same thing everywhere. A
non-default value cannot be expressed to an older Keras: that is an error
naming the layer, the key and the first Keras that understands it.

When a new Keras adds a key, adding a row to ``NEW_KEYS`` is the whole job.
The rows come from diffing the ``get_config()`` of every default-constructible
layer, initializer and optimizer of Keras 3.5.0 through 3.15.1.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facekit.contract import OLDEST_KERAS

CONFIG_FILE = "config.json"  # inside the .keras zip, beside metadata.json and model.weights.h5


@dataclass(frozen=True)
class NewKey:
    classes: tuple[str, ...]  # ``class_name`` values as the .keras config writes them
    key: str
    default: Any  # as JSON holds it
    since: str  # the first Keras version that writes (and reads) the key


_VARIANCE_SCALING = ("VarianceScaling", "GlorotUniform", "GlorotNormal", "HeUniform", "HeNormal", "LecunUniform",
                     "LecunNormal")
_AUGMENT_3_15 = ("AugMix", "AutoContrast", "CutMix", "Equalization", "MixUp", "RandAugment", "RandomColorJitter",
                 "RandomElasticTransform", "RandomErasing", "RandomGaussianBlur", "RandomGrayscale", "RandomInvert",
                 "RandomPerspective", "Solarization")

NEW_KEYS: tuple[NewKey, ...] = (
    NewKey(("RandomFlip",), "data_format", "channels_last", "3.6.0"),
    NewKey(("InputLayer",), "ragged", False, "3.9.0"),
    NewKey(("Resizing",), "antialias", False, "3.9.0"),
    NewKey(("ELU",), "alpha", 1.0, "3.12.0"),
    NewKey(("Dense", "EinsumDense", "Embedding"), "quantization_config", None, "3.13.0"),
    NewKey(("BatchNormalization",), "renorm", False, "3.14.0"),
    NewKey(("BatchNormalization",), "renorm_clipping", None, "3.14.0"),
    NewKey(("BatchNormalization",), "renorm_momentum", 0.99, "3.14.0"),
    NewKey(("IntegerLookup", "StringLookup"), "oov_method", "floormod", "3.14.0"),
    NewKey(("IntegerLookup", "StringLookup"), "salt", None, "3.14.0"),
    NewKey(_VARIANCE_SCALING, "input_axes", None, "3.15.0"),
    NewKey(_VARIANCE_SCALING, "output_axes", None, "3.15.0"),
    NewKey(("Attention", "AdditiveAttention"), "seed", None, "3.15.0"),
    NewKey(("Conv2DTranspose",), "output_padding", None, "3.15.0"),
    NewKey(_AUGMENT_3_15, "data_format", "channels_last", "3.15.0"),
)


@dataclass(frozen=True)
class Removal:
    layer: str | None
    class_name: str
    row: NewKey

    def __str__(self) -> str:
        return f"{self.layer}: {self.class_name}.{self.row.key} (Keras {self.row.since})"


class PortabilityError(ValueError):
    """A saved config uses a feature that the oldest supported Keras cannot read."""


def version_tuple(version: str) -> tuple[int, ...]:
    """'3.13.2' -> (3, 13, 2); a pre-release or local suffix ('3.16.0.dev1', '3.8.0+cpu') is ignored."""
    parts = []
    for piece in version.split("+")[0].split("."):
        digits = "".join(ch for ch in piece if ch.isdigit()) if piece[:1].isdigit() else ""
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def _older(version: str, than: str) -> bool:
    a, b = version_tuple(version), version_tuple(than)
    width = max(len(a), len(b))
    return a + (0,) * (width - len(a)) < b + (0,) * (width - len(b))


def _objects(node: Any, layer: str | None = None) -> Iterator[tuple[dict[str, Any], str | None]]:
    """Every serialized Keras object (a dict with ``class_name`` and a ``config`` dict) with the name of
    the layer it belongs to (its own name for a layer, the enclosing layer's for an initializer)."""
    if isinstance(node, dict):
        cfg = node.get("config")
        if isinstance(node.get("class_name"), str) and isinstance(cfg, dict):
            layer = cfg.get("name") if isinstance(cfg.get("name"), str) else layer
            yield node, layer
        for value in node.values():
            yield from _objects(value, layer)
    elif isinstance(node, list):
        for value in node:
            yield from _objects(value, layer)


def make_portable(config: dict[str, Any], oldest: str = OLDEST_KERAS) -> list[Removal]:
    """Remove, in place, every key of ``NEW_KEYS`` that Keras ``oldest`` cannot read; returns what went.

    Raises PortabilityError, naming layer, key and version, for such a key at a non-default value.
    """
    rows: dict[str, list[NewKey]] = {}
    for row in NEW_KEYS:
        if _older(oldest, row.since):
            for cls in row.classes:
                rows.setdefault(cls, []).append(row)
    removed: list[Removal] = []
    for obj, layer in _objects(config):
        for row in rows.get(obj["class_name"], ()):
            cfg = obj["config"]
            if row.key not in cfg:
                continue
            if cfg[row.key] != row.default:
                raise PortabilityError(
                    f"layer {layer!r} ({obj['class_name']}): {row.key}={cfg[row.key]!r} is not the default "
                    f"({row.default!r}); only Keras {row.since} and newer understand it, so the file cannot "
                    f"load on Keras {oldest}. Build the model without it.")
            del cfg[row.key]
            removed.append(Removal(layer, obj["class_name"], row))
    return removed


def dtype_policies(config: dict[str, Any]) -> dict[str, str]:
    """Layer name -> dtype policy name, for every layer of a saved config (nested models included)."""
    found: dict[str, str] = {}
    for obj, layer in _objects(config):
        dtype = obj["config"].get("dtype")
        if layer is None or dtype is None or "DTypePolicy" in obj["class_name"] or obj["class_name"].startswith("__"):
            continue  # a policy itself, or a tensor's record (``__keras_tensor__``) inside a node
        if isinstance(dtype, dict):
            dtype = (dtype.get("config") or {}).get("name", dtype.get("class_name"))
        found[layer] = str(dtype)
    return found


def non_float32(config: dict[str, Any]) -> dict[str, str]:
    """The layers whose dtype policy is anything but plain float32 (mixed_float16, bfloat16, ...)."""
    return {name: policy for name, policy in dtype_policies(config).items() if policy != "float32"}


def read_config(path: str | Path) -> dict[str, Any]:
    """The model config of a ``.keras`` file (a zip), without loading the model."""
    try:
        with zipfile.ZipFile(path) as zf:
            return json.loads(zf.read(CONFIG_FILE))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a Keras 3 .keras file ({exc})") from exc


def rewrite_config(src: str | Path, dest: str | Path, config: dict[str, Any]) -> None:
    """Copy the .keras zip ``src`` to ``dest`` with ``config`` as its config.json; other members unchanged."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = json.dumps(config).encode() if info.filename == CONFIG_FILE else zin.read(info)
            zout.writestr(info, data, compress_type=info.compress_type)
