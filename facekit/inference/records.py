"""What ``facekit predict`` writes for scripts: one versioned record per face and model.

``kind`` says what a record describes: a face in a photo (``image``), a face in
one sampled frame of a video (``frame``, with ``frame``, ``time_s`` and
``track``), or a face followed through a video (``track``: its age and P(female)
pooled over its frames, with their spread). A photo or video with no usable face
is one record of kind ``image`` or ``video`` saying why. Schema 2 added ``kind``
and the video kinds; a photo's record is otherwise what schema 1 wrote.

The one home of the output schema. ``--jsonl`` and ``--csv`` stream one record
per line; ``--json`` wraps the same records in one document with a summary.
``facekit/assets/predict.schema.json`` is its formal description (JSON Schema,
validated by the tests) and README's "Output for scripts" its prose one.
``SCHEMA_VERSION`` rises whenever a field changes meaning or goes away; new
optional fields keep it.

Every line stands alone (a script can ``grep`` a 50,000-line file), so each
carries the schema and facekit versions and the model's file and sha256.
An image with no usable face is a record too, with ``status`` saying why and
the face fields null: nothing a user gave disappears from the output.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facekit import __version__
from facekit.face.detect import POINT_NAMES
from facekit.inference.results import NO_FACE, UNREADABLE, FrameResult, ImageResult, VideoResult

SCHEMA_VERSION = 2
KINDS = ("image", "frame", "track", "video")
SCHEMA_FILE = Path(__file__).parents[1] / "assets" / "predict.schema.json"
FORMATS = ("json", "jsonl", "csv")


@dataclass(frozen=True)
class ModelInfo:
    """A model as records name it: the short label tables use, the file, and its content hash."""

    label: str
    file: str
    sha256: str

    @classmethod
    def of(cls, loaded: Any) -> ModelInfo:
        return cls(loaded.label, str(loaded.path), loaded.sha256)


def _round(v: float, places: int = 1) -> float | None:
    return None if v is None or math.isnan(v) else round(float(v), places)


def records(result: ImageResult | VideoResult, models: list[ModelInfo]) -> list[dict[str, Any]]:
    """The records of one photo, one video frame (none for a frame without a face) or one video's tracks."""
    video = isinstance(result, VideoResult)
    kind = "video" if video else "frame" if isinstance(result, FrameResult) else "image"
    width, height = result.size if result.size else (None, None)
    base = {"schema_version": SCHEMA_VERSION, "facekit_version": __version__, "kind": kind, "image": result.path,
            "width": width, "height": height, "status": result.status, "error": result.error}
    empty_face = {"face": None, "box": None, "score": None, "landmarks": None}
    empty_model = {"model": None, "model_file": None, "model_sha256": None, "age": None, "p_female": None,
                   "gender": None}
    if video:
        if not result.tracks:
            return [{**base, **empty_face, **empty_model}]
        return [{**base, "kind": "track", **empty_face, "model": m.label, "model_file": m.file,
                 "model_sha256": m.sha256, **t.predictions[m.label], "track": t.track, "frames": t.frames,
                 "first_frame": t.first_frame, "last_frame": t.last_frame, "first_time_s": t.first_time_s,
                 "last_time_s": t.last_time_s} for t in result.tracks for m in models]
    if not result.faces:
        return [] if kind == "frame" else [{**base, **empty_face, **empty_model}]
    where = {"frame": result.frame, "time_s": result.time_s} if kind == "frame" else {}
    out = []
    for i, f in enumerate(result.faces):
        face = {"face": i, "box": [_round(v) for v in f.box], "score": _round(f.score, 4),
                "landmarks": {name: [_round(x), _round(y)] for name, (x, y) in zip(POINT_NAMES, f.points.tolist())}}
        if kind == "frame":
            face = {**face, **where, "track": f.track}
        for m in models:
            p = f.predictions[m.label]
            out.append({**base, **face, "model": m.label, "model_file": m.file, "model_sha256": m.sha256,
                        "age": p["age"], "p_female": p["p_female"], "gender": p["gender"]})
    return out


CSV_COLUMNS = (
    "schema_version", "facekit_version", "kind", "image", "width", "height", "status", "error", "face",
    "x0", "y0", "x1", "y1", "score", *(f"{name}_{axis}" for name in POINT_NAMES for axis in "xy"),
    "model", "model_file", "model_sha256", "age", "p_female", "gender",
    "frame", "time_s", "track", "frames", "first_frame", "last_frame", "first_time_s", "last_time_s", "age_std",
    "p_female_std",
)


def csv_row(record: dict[str, Any]) -> list[Any]:
    """A record flattened to ``CSV_COLUMNS`` (box and landmarks spread over columns; null is empty)."""
    flat = dict(record)
    box = record["box"] or [None] * 4
    flat.update(zip(("x0", "y0", "x1", "y1"), box))
    marks = record["landmarks"] or {}
    for name in POINT_NAMES:
        x, y = marks.get(name) or (None, None)
        flat[f"{name}_x"], flat[f"{name}_y"] = x, y
    return ["" if flat.get(c) is None else flat[c] for c in CSV_COLUMNS]


class RecordWriter:
    """Writes records to a text stream in one of ``FORMATS``, line by line where the format allows."""

    def __init__(self, stream: io.TextIOBase, fmt: str, header: dict[str, Any]) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"output format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        self.stream, self.fmt, self.header = stream, fmt, header
        self._kept: list[dict[str, Any]] = []
        if fmt == "csv":
            self._csv = csv.writer(stream, lineterminator="\n")
            self._csv.writerow(CSV_COLUMNS)

    def write(self, recs: list[dict[str, Any]]) -> None:
        if self.fmt == "json":
            self._kept.extend(recs)
            return
        for r in recs:
            if self.fmt == "jsonl":
                self.stream.write(json.dumps(r, ensure_ascii=False) + "\n")
            else:
                self._csv.writerow(csv_row(r))
        self.stream.flush()  # a consumer reading the pipe sees each image as it is answered

    def close(self, summary: dict[str, Any]) -> None:
        if self.fmt == "json":
            doc = {**self.header, "records": self._kept, "summary": summary}
            self.stream.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        self.stream.flush()


def document_header(models: list[ModelInfo], template_digest: str, warnings: list[str]) -> dict[str, Any]:
    """The ``--json`` document's fields before its records."""
    return {"schema_version": SCHEMA_VERSION, "facekit_version": __version__,
            "models": [{"label": m.label, "file": m.file, "sha256": m.sha256} for m in models],
            "template": template_digest, "warnings": warnings}


@dataclass
class Tally:
    """The run's summary line and the ``--json`` summary."""

    images: int = 0
    with_faces: int = 0
    faces: int = 0
    no_face: int = 0
    unreadable: int = 0
    videos: int = 0
    frames: int = 0
    tracks: int = 0
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def done(self) -> int:
        """Progress units answered: photos and sampled frames (``predict.count_units``)."""
        return self.images + self.frames

    def add(self, result: ImageResult | VideoResult) -> None:
        if isinstance(result, VideoResult):
            self.videos += 1
            self.tracks += len(result.tracks)
        elif isinstance(result, FrameResult):
            self.frames += 1
            self.faces += len(result.faces)
            return
        else:
            self.images += 1
            self.faces += len(result.faces)
            self.with_faces += bool(result.faces)
        self.no_face += result.status == NO_FACE
        self.unreadable += result.status == UNREADABLE

    @property
    def faces_per_second(self) -> float:
        return self.faces / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"images": self.images, "images_with_faces": self.with_faces, "faces": self.faces,
                "no_face": self.no_face, "unreadable": self.unreadable, "videos": self.videos,
                "frames": self.frames, "tracks": self.tracks, "seconds": round(self.seconds, 2),
                "faces_per_second": round(self.faces_per_second, 2), "interrupted": self.interrupted}

    def line(self) -> str:
        skipped = [f"{n} {what}" for n, what in ((self.no_face, "without a face"), (self.unreadable, "unreadable"))
                   if n]
        inputs = [f"{self.with_faces} of {self.images} image{'s' * (self.images != 1)}"] if self.images else []
        if self.videos:
            inputs.append(f"{self.videos} video{'s' * (self.videos != 1)} ({self.frames} frames, "
                          f"{self.tracks} track{'s' * (self.tracks != 1)})")
        return (f"{self.faces} face{'s' * (self.faces != 1)} in {' and '.join(inputs) or '0 images'}"
                + (f" ({', '.join(skipped)})" if skipped else "")
                + f", {self.seconds:.1f} s, {self.faces_per_second:.1f} faces/s"
                + (" (interrupted)" if self.interrupted else ""))


def load_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text())
