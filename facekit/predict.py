"""``facekit predict``: age and gender for every face in any photo.

Each face is found and aligned exactly as ``prep`` does (same detector,
padding and template), so the model sees chip-like crops, and is fed the
exported input contract (BGR, [0, 1]).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from facekit.align import align_face
from facekit.atomic import atomic_path
from facekit.contract import INPUT_SIZE, rgb_to_input
from facekit.detect import FaceFinder
from facekit.imageio import ImageReadError, list_files, read_rgb
from facekit.inference import LoadedModel, run
from facekit.template import Template, framing_for

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"}


@dataclass
class FaceResult:
    box: tuple[float, float, float, float]
    score: float
    predictions: dict[str, dict[str, Any]]  # model label -> {"age", "gender", "p_female"}


@dataclass
class ImageResult:
    path: str
    faces: list[FaceResult] = field(default_factory=list)
    error: str | None = None
    annotated: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "error": self.error, "annotated": self.annotated,
                "faces": [{"box": [round(v, 1) for v in f.box],
                           "score": None if np.isnan(f.score) else round(f.score, 3),
                           "predictions": f.predictions} for f in self.faces]}


def expand_inputs(paths: list[Path]) -> list[Path]:
    """Files as given, folders replaced by the image files inside them (sorted)."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(q for q in list_files(p) if q.suffix.lower() in IMAGE_SUFFIXES)
        else:
            out.append(p)
    return out


def describe(age: float, p_female: float) -> dict[str, Any]:
    return {"age": round(float(age), 1), "gender": "female" if p_female >= 0.5 else "male",
            "p_female": round(float(p_female), 3)}


def predict_image(path: Path, models: list[LoadedModel], finder: FaceFinder, template: Template,
                  tta: bool = False) -> tuple[ImageResult, np.ndarray | None]:
    """Results for one image (faces left to right) and its pixels, for annotation."""
    try:
        rgb = read_rgb(path)
    except ImageReadError as exc:
        return ImageResult(str(path), error=str(exc)), None
    faces = finder.find(rgb, thorough=True)
    if not faces:
        return ImageResult(str(path), error=f"{path}: no face found"), rgb
    x = rgb_to_input(np.stack([align_face(rgb, f.points, template) for f in faces]))
    per_model = {lm.label: run(lm, x, tta=tta) for lm in models}
    results = [
        FaceResult(f.box, f.score, {label: describe(age[i], gen[i]) for label, (age, gen) in per_model.items()})
        for i, f in enumerate(faces)
    ]
    return ImageResult(str(path), results), rgb


def annotate(rgb: np.ndarray, result: ImageResult, dest: Path) -> Path:
    """A copy of the image with each face's box and predictions drawn on it."""
    img = Image.fromarray(rgb)
    draw = ImageDraw.Draw(img)
    width = max(2, round(min(img.size) / 150))
    for f in result.faces:
        x0, y0, x1, y1 = f.box
        draw.rectangle([x0, y0, x1, y1], outline=(255, 200, 0), width=width)
        text = "  ".join(f"{k}: {v['age']:.0f} {v['gender'][0].upper()}" for k, v in f.predictions.items())
        tx, ty = x0, max(0, y0 - 12)
        tb = draw.textbbox((tx, ty), text)
        draw.rectangle(tb, fill=(0, 0, 0))
        draw.text((tx, ty), text, fill=(255, 255, 255))
    with atomic_path(dest) as tmp:
        img.save(tmp, format="PNG")
    return dest


def predict(paths: list[Path], models: list[LoadedModel], annotate_dir: Path | None = None, tta: bool = False,
            max_faces: int = 20, model_dir: str | None = None, progress: Callable[[int, int], None] | None = None,
            template: Template | None = None) -> list[ImageResult]:
    """``template`` defaults to the one the models were trained with (``framing_for``)."""
    if max_faces < 1:
        raise ValueError(f"max faces must be at least 1, got {max_faces}")
    files = expand_inputs(paths)
    if template is None:
        template, _ = framing_for([lm.path for lm in models], INPUT_SIZE)
    results = []
    with FaceFinder(model_dir=model_dir, max_faces=max_faces) as finder:
        for i, path in enumerate(files):
            res, rgb = predict_image(path, models, finder, template, tta)
            if annotate_dir is not None and rgb is not None and res.faces:
                res.annotated = str(annotate(rgb, res, annotate_dir / f"{path.stem}.annotated.png"))
            results.append(res)
            if progress:
                progress(i + 1, len(files))
    return results
