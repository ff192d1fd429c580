"""A prep cache's face detections on their own, so the folder can be prepped again without MediaPipe.

Each row of a cache keeps the five alignment points in source pixels, the
detector's score, the number of faces and the digest of the decoded pixels;
that is all a crop needs besides the template. Saved apart (about 360 bytes an
image against 40 kB of compressed crop), they let ``facekit prep DIR
--detections FILE`` rebuild the same crops, byte for byte, where MediaPipe or
its model files are missing (Colab ships no mediapipe; a GPU machine reached
through a 64 MB upload cannot take a 200 MB cache), or re-align to another
template without detecting again. Points are matched by file name and trusted
only where the pixels' digest matches too; any other image is detected as usual.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facekit.utils.atomic import atomic_path

FORMAT = "facekit-detections"
VERSION = 1
# Prep options that change what detection finds; the others (which rows are kept, the template) do not.
DETECTION_OPTIONS = ("min_confidence", "pad_fraction")


class DetectionsError(ValueError):
    """A detections file that cannot be used, with the file and the reason."""


@dataclass(frozen=True)
class Detection:
    sha: str  # content_sha256 of the decoded pixels the points belong to
    points: np.ndarray | None  # (5, 2) float32 source pixels; None where no face was found
    score: float
    n_faces: int


def save_detections(cache: str | Path, dest: str | Path) -> int:
    """Write the detections of every row of ``cache`` to ``dest`` (JSON, atomically); returns the row count."""
    import h5py

    from facekit.data.cache import read_attrs

    attrs = read_attrs(cache)
    options = attrs.get("options") or {}
    if not options.get("align", False):
        raise DetectionsError(f"{cache}: prepped with --no-align, so it holds no detections to save")
    rows: dict[str, Any] = {}
    with h5py.File(cache, "r") as f:
        names, digests = f["filename"][...], f["content_sha256"][...]
        points, scores, n_faces, aligned = f["landmarks"][...], f["score"][...], f["n_faces"][...], f["aligned"][...]
    for i, name in enumerate(names):
        name = name.decode() if isinstance(name, bytes) else str(name)
        score = float(scores[i])
        rows[name] = {
            "sha256": digests[i].decode(),
            # float32 -> float -> JSON -> float32 is exact, so the crops rebuilt from these points are identical.
            "points": points[i].astype(float).tolist() if aligned[i] else None,
            "score": None if math.isnan(score) else score,
            "n_faces": int(n_faces[i]),
        }
    data = {"format": FORMAT, "version": VERSION, "source_dir": attrs.get("source_dir"),
            "options": {k: options.get(k) for k in DETECTION_OPTIONS}, "images": len(rows), "rows": rows}
    with atomic_path(dest) as tmp:  # compact: it travels (1.8 MB for 5,000 images)
        tmp.write_text(json.dumps(data, separators=(",", ":")) + "\n")
    return len(rows)


def load_detections(path: str | Path, options: dict[str, Any]) -> dict[str, Detection]:
    """The detections in ``path`` by file name, refused unless they were found with these prep options."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise DetectionsError(f"{path}: no such detections file (write one with `facekit prep DIR "
                              "--save-detections FILE`)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DetectionsError(f"{path}: not a readable detections file ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise DetectionsError(f"{path}: not a facekit detections file (written by `facekit prep --save-detections`)")
    if data.get("version") != VERSION:
        raise DetectionsError(f"{path}: detections format version {data.get('version')}; this facekit reads "
                              f"version {VERSION}")
    if not options.get("align", False):
        raise DetectionsError(f"{path}: detections are for aligning; --no-align does not use them")
    saved = data.get("options") or {}
    for key in DETECTION_OPTIONS:
        if saved.get(key) != options.get(key):
            raise DetectionsError(f"{path}: found with {key.replace('_', ' ')} {saved.get(key)}, this prep uses "
                                  f"{options.get(key)}; the faces found would differ, so prep with the same value "
                                  "or without --detections")
    out: dict[str, Detection] = {}
    try:
        for name, row in data["rows"].items():
            pts = None if row["points"] is None else np.asarray(row["points"], np.float32).reshape(5, 2)
            score = float("nan") if row["score"] is None else float(row["score"])
            out[name] = Detection(str(row["sha256"]), pts, score, int(row["n_faces"]))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DetectionsError(f"{path}: a row is malformed ({type(exc).__name__}: {exc})") from None
    return out
