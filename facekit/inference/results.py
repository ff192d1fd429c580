"""What prediction answers, for photos and videos alike, and how an answer is drawn on its picture.

``records`` turns these into the versioned output; the predictor, the video
runner and the service all build them, so they live below all three.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from facekit.contract import predicted_female
from facekit.utils.atomic import atomic_path

NO_FACE = "no_face"
UNREADABLE = "unreadable"
BOX_COLOUR = (255, 200, 0)


@dataclass
class FaceResult:
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels of the image as read (EXIF applied)
    score: float  # detector confidence; NaN when only the landmarker found the face
    points: np.ndarray  # (5, 2): detect.POINT_NAMES, same pixels as the box
    predictions: dict[str, dict[str, Any]]  # model label -> {"age", "gender", "p_female"}
    track: int | None = None  # a video's track id (1-based); None for photos


@dataclass
class ImageResult:
    path: str
    faces: list[FaceResult] = field(default_factory=list)
    error: str | None = None
    status: str = "ok"  # "ok", NO_FACE or UNREADABLE: what a script filters on, the message is for people
    size: tuple[int, int] | None = None  # width, height as read; None when unreadable
    annotated: str | None = None


@dataclass
class FrameResult(ImageResult):
    """One sampled frame of a video: its faces, each with its track. A frame without a face has no error."""

    frame: int = 0  # index among all the video's frames
    time_s: float = 0.0


@dataclass
class TrackSummary:
    track: int
    frames: int  # sampled frames the face was seen in
    first_frame: int
    last_frame: int
    first_time_s: float
    last_time_s: float
    predictions: dict[str, dict[str, Any]]  # model label -> {"age", "age_std", "p_female", "p_female_std", "gender"}


@dataclass
class VideoResult:
    """A whole video, after its frames: its tracks, or why it has none (``status`` and ``error`` as photos')."""

    path: str
    size: tuple[int, int] | None = None
    tracks: list[TrackSummary] = field(default_factory=list)
    status: str = "ok"
    error: str | None = None
    warning: str | None = None  # decoding stopped early, or the frame rate was guessed
    frames: int = 0  # frames sampled
    rate: float | None = None  # frames sampled per second of video
    annotated: str | None = None
    interrupted: bool = False  # Ctrl-C stopped it: the tracks cover the frames before


def describe(age: float, p_female: float) -> dict[str, Any]:
    return {"age": round(float(age), 1), "gender": "female" if predicted_female(p_female) else "male",
            "p_female": round(float(p_female), 4)}


def label_line(predictions: dict[str, dict[str, Any]], prefix: str = "") -> str:
    """``B: 34 F  A: 31 F``: what a box on a picture says."""
    return prefix + "  ".join(f"{k}: {v['age']:.0f} {v['gender'][0].upper()}" for k, v in predictions.items())


def draw_faces(rgb: np.ndarray, boxes: list[tuple[tuple[float, ...], str]]) -> Image.Image:
    """A copy of ``rgb`` with each (box, text) drawn: the one drawing for annotated photos and video frames."""
    img = Image.fromarray(rgb)
    draw = ImageDraw.Draw(img)
    width = max(2, round(min(img.size) / 150))
    for (x0, y0, x1, y1), text in boxes:
        draw.rectangle([x0, y0, x1, y1], outline=BOX_COLOUR, width=width)
        tx, ty = x0, max(0, y0 - 12)
        draw.rectangle(draw.textbbox((tx, ty), text), fill=(0, 0, 0))
        draw.text((tx, ty), text, fill=(255, 255, 255))
    return img


def annotate(rgb: np.ndarray, result: ImageResult, dest: Path) -> Path:
    """A copy of the image with each face's box and predictions drawn on it."""
    img = draw_faces(rgb, [(f.box, label_line(f.predictions)) for f in result.faces])
    with atomic_path(dest) as tmp:
        img.save(tmp, format="PNG")
    return dest


def unique_name(name: str, used: set[str]) -> str:
    """``name``, or ``stem-2.suffix`` and so on: two folders' ``IMG_0001.jpg`` must not share one annotation."""
    stem, _, suffix = name.partition(".")
    candidate, n = name, 1
    while candidate in used:
        n += 1
        candidate = f"{stem}-{n}.{suffix}"
    used.add(candidate)
    return candidate
