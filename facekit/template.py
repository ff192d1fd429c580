"""The canonical landmark template that alignment maps faces onto.

The template is the median position of each of the five alignment points on
the UTKFace chips themselves, measured by the same FaceFinder that aligns.
Aligning any photo to it therefore gives the framing of a chip, and a chip
aligned again barely moves. ``facekit template DIR`` re-derives it; the
result shipped in ``facekit/assets/template.json`` records how it was made.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facekit.atomic import write_json
from facekit.detect import POINT_NAMES

DEFAULT_TEMPLATE = Path(__file__).parent / "assets" / "template.json"


@dataclass(frozen=True)
class Template:
    size: int
    points: np.ndarray  # (5, 2) float32 in pixels of a size x size crop
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "point_names": list(POINT_NAMES),
            "points": [[round(float(v), 3) for v in p] for p in self.points],
            "meta": self.meta,
        }

    def at_size(self, size: int) -> Template:
        """The same framing for a size x size crop (a template derived from 200 px chips frames 128 px crops)."""
        if size == self.size:
            return self
        return Template(size, (self.points * (size / self.size)).astype(np.float32),
                        {**self.meta, "scaled_from": self.size})

    def digest(self) -> str:
        """Identifies the template in cache fingerprints: a new template invalidates old caches."""
        blob = json.dumps({"size": self.size, "points": self.to_json()["points"]}).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def load_template(path: str | Path | None = None) -> Template:
    data = json.loads(Path(path or DEFAULT_TEMPLATE).read_text())
    return Template(size=int(data["size"]), points=np.asarray(data["points"], np.float32), meta=data.get("meta", {}))


def save_template(template: Template, path: str | Path) -> None:
    write_json(path, template.to_json())


def template_from_points(points: np.ndarray, size: int, meta: dict[str, Any]) -> Template:
    """Median of per-chip points (N, 5, 2): robust to the few chips whose landmarks are off."""
    good = points[~np.isnan(points).any(axis=(1, 2))]
    if len(good) == 0:
        raise ValueError("no face was found on any image; cannot derive a template")
    med = np.median(good, axis=0).astype(np.float32)
    spread = np.median(np.abs(good - med), axis=0)
    mad = [[round(float(v), 2) for v in p] for p in spread]
    meta = {**meta, "faces": int(len(good)), "median_abs_deviation_px": mad}
    return Template(size=size, points=med, meta=meta)
