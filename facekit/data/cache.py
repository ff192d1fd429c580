"""The HDF5 cache that ``facekit prep`` writes and training reads.

Layout (schema 2), readable with plain h5py:

- ``images``    (N, S, S, 3) uint8, channel order in the ``channel_order`` attribute (RGB)
- ``age``, ``gender``, ``race``  (N,) int16 / int8 / int8
- ``filename``  (N,) UTF-8 source file name (no directory)
- ``score``     (N,) float32 detector confidence, NaN where no face was found or detection was off
- ``landmarks`` (N, 5, 2) float32 alignment points in source-image pixels, NaN where none
- ``aligned``   (N,) bool: True where the crop was aligned to the template
- ``content_sha256`` (N,) sha256 of the decoded pixels (shape-prefixed), so re-encoded copies match
- ``n_faces``   (N,) int16 faces found in the source image (schema 2: an incremental prep reuses
  a row without detecting again, and the report still counts images with several faces)
- ``file_size``, ``file_mtime_ns`` (N,) int64 the source file's size and modification time when it
  was read, -1 where unknown: an incremental prep trusts a row whose file still has both without
  reading the file again. Optional: schema-2 caches written before them have none, and their
  files are read and hashed once instead.

``images`` is stored one gzip-compressed chunk per crop, so any crop is read on
its own: a shuffled batch of 64 reads at about 2,300 crops a second on one core
of the 2-core CI machine (``CacheImages``), against 160 through h5py's fancy
indexing; training on a CPU consumes 25 to 50 a second and a MobileNet on an
H100 about 1,600. Chunks of a batch's worth would read faster in order but
force a shuffle by blocks.

File attributes: ``schema_version``, ``facekit_version``, ``channel_order``, ``image_size``,
``template`` (JSON), ``options`` (JSON), ``source_dir``, ``created``, ``fingerprint``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from facekit.choices import CACHE_MODES

SCHEMA_VERSION = 2
MEMORY_SHARE = 0.5  # "auto" holds crops in memory when twice their size is at most this share of free memory
_STR = h5py.string_dtype("utf-8")


class CacheError(Exception):
    """A cache that is missing, unreadable or of another schema, with what to do about it."""


class SchemaMismatch(CacheError):
    """A readable cache written with another schema version."""


class CacheImages:
    """A cache's crops on disk, indexed like the ``images`` array but read only when indexed.

    ``images[i]``, ``images[rows]`` and ``images[a:b]`` return arrays;
    ``subset(rows)`` a view of some rows, still on disk. Memory use is one
    open file (h5py's 1 MB chunk cache) whatever the cache's size. Safe to read
    from several threads (h5py serialises its calls).
    """

    def __init__(self, path: str | Path, rows: np.ndarray | None = None) -> None:
        self.path = Path(path)
        self._file = h5py.File(self.path, "r")
        self._ds = self._file["images"]
        self.rows = np.arange(len(self._ds)) if rows is None else np.asarray(rows, dtype=np.int64)
        self.dtype = self._ds.dtype

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.rows), *self._ds.shape[1:])

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    def __len__(self) -> int:
        return len(self.rows)

    def subset(self, rows: np.ndarray) -> CacheImages:
        view = object.__new__(CacheImages)
        view.path, view._file, view._ds, view.dtype = self.path, self._file, self._ds, self.dtype
        view.rows = self.rows[np.asarray(rows, dtype=np.int64)]
        return view

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, tuple):  # rows[..., ::-1] would reverse the rows, not the channels: refuse, loudly
            raise TypeError(f"{self.path}: cached images on disk are indexed by rows only; read them first "
                            "(np.asarray) to index within an image")
        wanted = self.rows[key]
        if np.ndim(wanted) == 0:
            return self._ds[int(wanted)]
        out = np.empty((len(wanted), *self._ds.shape[1:]), self.dtype)
        for j in np.argsort(wanted, kind="stable"):  # in file order: neighbouring chunks stay in the chunk cache
            out[j] = self._ds[int(wanted[j])]
        return out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        arr = self[np.arange(len(self.rows))]
        return arr if dtype is None else arr.astype(dtype)


def take(images: np.ndarray | CacheImages, rows: np.ndarray) -> np.ndarray | CacheImages:
    """``images[rows]``: a copy in memory, or a view that stays on disk."""
    return images.subset(rows) if isinstance(images, CacheImages) else images[rows]


def available_memory() -> int | None:
    """Bytes the system could give this process now (MemAvailable on Linux), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def choose_mode(path: str | Path, mode: str = "auto") -> tuple[str, str]:
    """``memory`` or ``stream`` for training on this cache, and why (printed in the run output)."""
    if mode not in CACHE_MODES:
        raise ValueError(f"cache mode must be one of {', '.join(CACHE_MODES)}, got {mode!r}")
    read_attrs(path)  # a missing, unreadable or old cache: the CacheError that says what to do
    with h5py.File(path, "r") as f:
        size = int(np.prod(f["images"].shape)) * f["images"].dtype.itemsize
    gb = size / 1e9
    if mode != "auto":
        return mode, f"{gb:.2f} GB of crops, --cache-mode {mode}"
    free = available_memory()
    if free is None or 2 * size <= MEMORY_SHARE * free:
        where = "unknown free memory" if free is None else f"{free / 1e9:.1f} GB free"
        return "memory", f"{gb:.2f} GB of crops fit in memory ({where})"
    return "stream", (f"{gb:.2f} GB of crops, {free / 1e9:.1f} GB free: each batch is read from the cache "
                      "(memory stays flat)")


@dataclass
class CacheData:
    images: np.ndarray | CacheImages
    age: np.ndarray
    gender: np.ndarray
    race: np.ndarray
    filename: np.ndarray
    score: np.ndarray
    landmarks: np.ndarray
    aligned: np.ndarray
    content_sha256: np.ndarray
    n_faces: np.ndarray
    attrs: dict[str, Any]

    def __len__(self) -> int:
        return len(self.age)


IMAGE_FILTERS = {"compression": "gzip", "compression_opts": 4, "shuffle": True}  # one chunk per crop


@dataclass(frozen=True)
class StoredCrop:
    """A crop as a cache stores it, still compressed: copied between caches of one layout without the
    gzip round trip, which was most of an incremental prep's time once nothing was detected or read."""

    data: bytes
    filter_mask: int

    @staticmethod
    def readable(images: h5py.Dataset) -> bool:
        """Whether ``images`` stores crops exactly as CacheWriter writes them (else decode and re-encode)."""
        size = images.shape[1]
        return (images.dtype == np.uint8 and images.chunks == (1, size, size, 3)
                and all(getattr(images, k) == v for k, v in IMAGE_FILTERS.items()))

    @classmethod
    def read(cls, images: h5py.Dataset, i: int) -> StoredCrop:
        mask, data = images.id.read_direct_chunk((i, 0, 0, 0))
        return cls(bytes(data), mask)


class CacheWriter:
    """Appends records to an open HDF5 file in blocks; the caller owns atomicity (see atomic_path).

    A row's ``images`` is a crop array or a StoredCrop of a cache with the same layout.
    """

    OPTIONAL = {"file_size": -1, "file_mtime_ns": -1}  # columns a row may leave out: unknown

    def __init__(self, path: Path, size: int, attrs: dict[str, Any], block: int = 256) -> None:
        self.f = h5py.File(path, "w")
        self.block = block
        self.n = 0
        self._buf: list[dict[str, Any]] = []
        f = self.f
        f.create_dataset("images", (0, size, size, 3), np.uint8, maxshape=(None, size, size, 3),
                         chunks=(1, size, size, 3), **IMAGE_FILTERS)
        for name, dtype, shape in [
            ("age", np.int16, ()), ("gender", np.int8, ()), ("race", np.int8, ()),
            ("filename", _STR, ()), ("score", np.float32, ()), ("landmarks", np.float32, (5, 2)),
            ("aligned", np.bool_, ()), ("content_sha256", "S64", ()), ("n_faces", np.int16, ()),
            ("file_size", np.int64, ()), ("file_mtime_ns", np.int64, ()),
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
            values = [r.get(name, self.OPTIONAL.get(name)) if name in self.OPTIONAL else r[name] for r in self._buf]
            if name == "images" and any(isinstance(v, StoredCrop) for v in values):
                for j, v in enumerate(values):  # one chunk per crop: each written on its own anyway
                    if isinstance(v, StoredCrop):
                        ds.id.write_direct_chunk((self.n + j, 0, 0, 0), v.data, v.filter_mask)
                    else:
                        ds[self.n + j] = v
                continue
            ds[self.n : self.n + k] = values if name == "filename" else np.stack([np.asarray(v) for v in values])
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
        if "unable to lock file" in str(exc):  # HDF5's own lock: a writer has it open; the file is not bad
            raise CacheError(f"{path}: another process has this cache open for writing; wait for it to finish "
                             "(a `facekit prep` of the same cache finishes by replacing it whole)") from None
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


def read_cache(path: str | Path, in_memory: bool = True) -> CacheData:
    """A cache's columns; its crops in memory (5,000 chips are about 250 MB) or, with
    ``in_memory=False``, as ``CacheImages`` read on demand (``choose_mode`` decides for training)."""
    attrs = read_attrs(path)
    wanted = [f.name for f in fields(CacheData) if f.name != "attrs"]
    with h5py.File(path, "r") as f:
        missing = [name for name in wanted if name not in f]
        if missing:
            raise CacheError(f"{path}: not a complete facekit cache (no {', '.join(missing)} dataset); rebuild it "
                             "with `facekit prep DIR --force`")
        cols: dict[str, Any] = {name: f[name][...] for name in wanted if in_memory or name != "images"}
        lengths = {name: len(col) for name, col in cols.items()} | {"images": len(f["images"])}
    if len(set(lengths.values())) != 1:
        raise CacheError(f"{path}: datasets of different lengths {lengths}; rebuild it with `facekit prep DIR --force`")
    if not in_memory:
        cols["images"] = CacheImages(path)
    cols["filename"] = np.array([s.decode() if isinstance(s, bytes) else s for s in cols["filename"]], dtype=object)
    cols["content_sha256"] = np.array([s.decode() for s in cols["content_sha256"]], dtype=object)
    return CacheData(attrs=attrs, **cols)
