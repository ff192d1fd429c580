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

from facekit.face.detect import POINT_NAMES
from facekit.utils.atomic import output_path, write_json

DEFAULT_TEMPLATE = Path(__file__).parents[1] / "assets" / "template.json"
RUN_TEMPLATE = "template.json"  # a run folder's copy of the template its training crops were aligned to


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
    check_destination(path)
    write_json(path, template.to_json())


def check_destination(path: str | Path) -> None:
    """Templates go anywhere but over the shipped one.

    Overwriting the package's template would silently change how ``predict``
    frames faces for every model already trained against it.
    """
    if Path(path).resolve() == DEFAULT_TEMPLATE.resolve():
        raise ValueError(f"{path}: this is the template facekit ships; overwriting it would change how every "
                         "existing model's faces are framed. Write it elsewhere and pass it to "
                         "`facekit prep --template FILE`")
    output_path(path)


def read_template(path: str | Path) -> Template:
    """``load_template`` with a message naming the file when it is missing or not a template."""
    try:
        tpl = load_template(path)
    except FileNotFoundError:
        raise ValueError(f"{path}: template file not found") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a facekit template ({exc})") from None
    if tpl.points.shape != (len(POINT_NAMES), 2) or tpl.size < 16:
        raise ValueError(f"{path}: not a facekit template (points {tpl.points.shape}, size {tpl.size})")
    return tpl


def framing_for(model_paths: list[Path], size: int) -> tuple[Template, list[str]]:
    """The template the models' training crops were aligned to (their run folders' copy), at ``size``.

    Models outside a run folder get the shipped template. Models trained
    against different templates cannot share one framing: the first one's
    is used and a warning says so.
    """
    found = {str(p): read_template(Path(p).parent / RUN_TEMPLATE) for p in model_paths
             if (Path(p).parent / RUN_TEMPLATE).is_file()}
    if not found:
        return load_template().at_size(size), []
    first, tpl = next(iter(found.items()))
    warnings = []
    if len({t.at_size(size).digest() for t in found.values()}) > 1:
        warnings.append(f"the models were trained on faces aligned to different templates; all are framed with "
                        f"the one {first} was trained with, so the others may score worse than they should")
    return tpl.at_size(size), warnings


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
