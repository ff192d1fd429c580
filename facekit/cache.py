"""The HDF5 cache that ``facekit prep`` writes and training reads.

Layout (schema 1), readable with plain h5py:

- ``images``    (N, S, S, 3) uint8, channel order in the ``channel_order`` attribute (RGB)
- ``age``, ``gender``, ``race``  (N,) int16 / int8 / int8
- ``filename``  (N,) UTF-8 source file name (no directory)
- ``score``     (N,) float32 detector confidence, NaN where no face was found or detection was off
- ``landmarks`` (N, 5, 2) float32 alignment points in source-image pixels, NaN where none
- ``aligned``   (N,) bool: True where the crop was aligned to the template
- ``content_sha256`` (N,) sha256 of the decoded pixels (shape-prefixed), so re-encoded copies match

File attributes: ``schema_version``, ``facekit_version``, ``channel_order``, ``image_size``,
``template`` (JSON), ``options`` (JSON), ``source_dir``, ``created``, ``fingerprint``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import h5py
import numpy as np

SCHEMA_VERSION = 1
_STR = h5py.string_dtype("utf-8")


class CacheError(Exception):
    """A cache that is missing, unreadable or of another schema, with what to do about it."""


class SchemaMismatch(CacheError):
    """A readable cache written with another schema version."""


@dataclass
class CacheData:
    images: np.ndarray
    age: np.ndarray
    gender: np.ndarray
    race: np.ndarray
    filename: np.ndarray
    score: np.ndarray
    landmarks: np.ndarray
    aligned: np.ndarray
    content_sha256: np.ndarray
    attrs: dict[str, Any]

    def __len__(self) -> int:
        return len(self.age)


class CacheWriter:
    """Appends records to an open HDF5 file in blocks; the caller owns atomicity (see atomic_path)."""

    def __init__(self, path: Path, size: int, attrs: dict[str, Any], block: int = 256) -> None:
        self.f = h5py.File(path, "w")
        self.block = block
        self.n = 0
        self._buf: list[dict[str, Any]] = []
        f = self.f
        f.create_dataset(
            "images", (0, size, size, 3), np.uint8, maxshape=(None, size, size, 3),
            chunks=(1, size, size, 3), compression="gzip", compression_opts=4, shuffle=True,
        )
        for name, dtype, shape in [
            ("age", np.int16, ()), ("gender", np.int8, ()), ("race", np.int8, ()),
            ("filename", _STR, ()), ("score", np.float32, ()), ("landmarks", np.float32, (5, 2)),
            ("aligned", np.bool_, ()), ("content_sha256", "S64", ()),
        ]:
            f.create_dataset(name, (0, *shape), dtype, maxshape=(None, *shape), chunks=(1024, *shape))
        for key, value in attrs.items():
            f.attrs[key] = value

    def append(self, **row: Any) -> None:
        self._buf.append(row)
        if len(self._buf) >= self.block:
            self.flush()

    def flush(self) -> None:
        if not self._buf:
            return
        k = len(self._buf)
        for name in self.f:
            ds = self.f[name]
            ds.resize(self.n + k, axis=0)
            ds[self.n : self.n + k] = np.stack([np.asarray(r[name]) for r in self._buf]) if name != "filename" else [
                r[name] for r in self._buf
            ]
        self.n += k
        self._buf.clear()

    def close(self) -> None:
        self.flush()
        self.f.close()


def read_attrs(path: str | Path) -> dict[str, Any]:
    """File attributes only, for cheap checks such as reuse; raises CacheError on other schemas."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
    except FileNotFoundError:
        raise CacheError(f"{path}: no such cache; build it with `facekit prep DIR`") from None
    except OSError as exc:
        raise CacheError(
            f"{path}: not a readable HDF5 cache ({exc}); rebuild it with `facekit prep DIR --force`"
        ) from None
    version = int(attrs.get("schema_version", 0))
    if version != SCHEMA_VERSION:
        raise SchemaMismatch(
            f"{path}: cache schema version {version}, but this facekit reads version {SCHEMA_VERSION}; "
            "rebuild it with `facekit prep DIR --force`"
        )
    for key in ("template", "options"):
        if isinstance(attrs.get(key), str):
            attrs[key] = json.loads(attrs[key])
    return attrs


def read_cache(path: str | Path) -> CacheData:
    """Load a whole cache into memory (5,000 chips are about 250 MB)."""
    attrs = read_attrs(path)
    wanted = [f.name for f in fields(CacheData) if f.name != "attrs"]
    with h5py.File(path, "r") as f:
        missing = [name for name in wanted if name not in f]
        if missing:
            raise CacheError(f"{path}: not a complete facekit cache (no {', '.join(missing)} dataset); rebuild it "
                             "with `facekit prep DIR --force`")
        cols = {name: f[name][...] for name in wanted}
        lengths = {name: len(col) for name, col in cols.items()}
    if len(set(lengths.values())) != 1:
        raise CacheError(f"{path}: datasets of different lengths {lengths}; rebuild it with `facekit prep DIR --force`")
    cols["filename"] = np.array([s.decode() if isinstance(s, bytes) else s for s in cols["filename"]], dtype=object)
    cols["content_sha256"] = np.array([s.decode() for s in cols["content_sha256"]], dtype=object)
    return CacheData(attrs=attrs, **cols)
