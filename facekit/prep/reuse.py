"""Cache reuse: rows of the cache being replaced, or of an interrupted run's partial file,
copied instead of detected again."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from facekit.data.cache import CacheError, StoredCrop, read_attrs
from facekit.face.template import Template
from facekit.prep.workers import Known, PrepOptions

PARTIAL = ".partial.h5"  # rows written so far; an interrupted prep leaves it and the next run resumes from it
PARTIAL_PREVIOUS = ".partial.prev.h5"


def lock_path(cache: Path) -> Path:
    """The hidden file a prep holds locked while it writes ``cache``: a second prep of it waits."""
    return cache.with_name(f".{cache.name}.lock")



class ReusableRows:
    """Rows of earlier caches of this folder (the cache being replaced, an interrupted run's) that may be
    copied instead of detected again: same schema, options, template and crop size, and the same file
    (size and modification time) or the same pixels (the worker compares each file's digest with the
    row's). Unreadable or unlike files are ignored."""

    _COLUMNS = ("images", "score", "landmarks", "aligned", "n_faces")

    def __init__(self, sources: list[Path], options: PrepOptions, template: Template) -> None:
        import h5py

        self._files: list[Any] = []
        self._where: dict[str, tuple[Any, int, Known]] = {}
        for src in sources:
            try:
                attrs = read_attrs(src)
                if (attrs.get("options") != asdict(options) or attrs.get("template") != template.to_json()
                        or int(attrs.get("image_size", 0)) != template.size):
                    continue
                f = h5py.File(src, "r")
            except (CacheError, OSError):
                continue
            self._files.append(f)
            names, digests = f["filename"][...], f["content_sha256"][...]
            unknown = np.full(len(names), -1, np.int64)
            sizes = f["file_size"][...] if "file_size" in f else unknown
            times = f["file_mtime_ns"][...] if "file_mtime_ns" in f else unknown
            for i, (name, sha) in enumerate(zip(names, digests)):
                name = name.decode() if isinstance(name, bytes) else str(name)
                # The first source wins.
                self._where.setdefault(name, (f, i, Known(sha.decode(), int(sizes[i]), int(times[i]))))

    def known(self) -> dict[str, Known]:
        return {name: known for name, (_, _, known) in self._where.items()}

    def row(self, name: str) -> dict[str, Any]:
        """The row's columns; its crop still compressed where the source's layout allows (``StoredCrop``)."""
        f, i, _ = self._where[name]
        images = f["images"]
        crop = StoredCrop.read(images, i) if StoredCrop.readable(images) else images[i]
        return {"images": crop, **{col: f[col][i] for col in self._COLUMNS if col != "images"}}

    def crop(self, name: str) -> np.ndarray:
        f, i, _ = self._where[name]
        return f["images"][i]

    def close(self) -> None:
        for f in self._files:
            f.close()


def keep_larger(partial: Path, previous: Path) -> None:
    """After an interruption keep whichever partial file holds more rows (a second interruption soon after
    a restart must not throw away the first run's work); remove the other."""
    import h5py

    def rows(path: Path) -> int:
        try:
            with h5py.File(path, "r") as f:
                return len(f["filename"])
        except (OSError, KeyError):
            return -1

    if previous.exists():
        if rows(previous) > rows(partial):
            os.replace(previous, partial)
        else:
            previous.unlink(missing_ok=True)
    if rows(partial) <= 0:  # nothing worth resuming from
        partial.unlink(missing_ok=True)


