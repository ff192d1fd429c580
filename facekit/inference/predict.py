"""``facekit predict``: age and gender for every face in any photo, one image or a folder of thousands.

Each face is found and aligned exactly as ``prep`` does (same detector,
padding and template), so the model sees chip-like crops, and is fed the
exported input contract (BGR, [0, 1]).

Folders run as a two-stage pipeline: a reader thread decodes, detects and
aligns the next images while the model answers the faces of many images in
one forward pass (``batch_size`` faces; MediaPipe, OpenCV and the Keras
backend release the GIL, so the stages overlap). On a 2-core CPU full batches
gave 43 faces/s against 34 when each batch took only the faces ready at the
time (``benchmarks/predict_speed.py``). One photo at a time goes through
``Predictor.image``, with no thread and no batch to wait for.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from facekit.contract import INPUT_SIZE, predicted_female, rgb_to_input
from facekit.data.imageio import IMAGE_SUFFIXES, ImageReadError, list_files, read_rgb
from facekit.face.align import align_face
from facekit.face.detect import FaceFinder
from facekit.face.template import Template, framing_for
from facekit.inference.load import LoadedModel, run
from facekit.utils.atomic import atomic_path

STAGES = ("read", "detect", "align", "model")  # where the time goes (the benchmark reports each share)
NO_FACE = "no_face"
UNREADABLE = "unreadable"


@dataclass
class FaceResult:
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels of the image as read (EXIF applied)
    score: float  # detector confidence; NaN when only the landmarker found the face
    points: np.ndarray  # (5, 2): detect.POINT_NAMES, same pixels as the box
    predictions: dict[str, dict[str, Any]]  # model label -> {"age", "gender", "p_female"}


@dataclass
class ImageResult:
    path: str
    faces: list[FaceResult] = field(default_factory=list)
    error: str | None = None
    status: str = "ok"  # "ok", NO_FACE or UNREADABLE: what a script filters on, the message is for people
    size: tuple[int, int] | None = None  # width, height as read; None when unreadable
    annotated: str | None = None


def expand_inputs(paths: list[Path], recursive: bool = False) -> list[Path]:
    """Files as given, folders replaced by the image files inside them (sorted; subfolders with ``recursive``).

    A named file is always tried (and reported if it is no image); inside
    folders only image suffixes count and hidden files and folders are skipped.
    """
    out: list[Path] = []
    for p in paths:
        if not p.is_dir():
            out.append(p)
        elif recursive:
            found = (q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES
                     and not any(part.startswith(".") for part in q.relative_to(p).parts))
            out.extend(sorted(found))
        else:
            out.extend(q for q in list_files(p) if q.suffix.lower() in IMAGE_SUFFIXES)
    return out


def describe(age: float, p_female: float) -> dict[str, Any]:
    return {"age": round(float(age), 1), "gender": "female" if predicted_female(p_female) else "male",
            "p_female": round(float(p_female), 4)}


@dataclass
class _Aligned:
    """One image after the reader stage: its faces and their crops, or why it has none."""

    path: Path
    result: ImageResult
    crops: np.ndarray | None = None  # (faces, 128, 128, 3) model input
    faces: list[Any] = field(default_factory=list)
    rgb: np.ndarray | None = None  # kept only for annotation


class _Clock:
    """Seconds per pipeline stage, summed over the images (the reader's stages overlap the model's)."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self._lock = threading.Lock()

    def add(self, stage: str, since: float) -> float:
        now = time.perf_counter()
        with self._lock:
            self.seconds[stage] += now - since
        return now


def _align_one(path: Path, finder: FaceFinder, template: Template, thorough: bool, keep_rgb: bool,
               clock: _Clock) -> _Aligned:
    t = time.perf_counter()
    try:
        rgb = read_rgb(path)
    except ImageReadError as exc:
        clock.add("read", t)
        return _Aligned(path, ImageResult(str(path), error=str(exc), status=UNREADABLE))
    t = clock.add("read", t)
    size = (int(rgb.shape[1]), int(rgb.shape[0]))
    faces = finder.find(rgb, thorough=thorough)
    t = clock.add("detect", t)
    if not faces:
        return _Aligned(path, ImageResult(str(path), error=f"{path}: no face found", status=NO_FACE, size=size))
    crops = rgb_to_input(np.stack([align_face(rgb, f.points, template) for f in faces]))
    clock.add("align", t)
    return _Aligned(path, ImageResult(str(path), size=size), crops, faces, rgb if keep_rgb else None)


class _Reader:
    """The reader stage in a thread, feeding a short queue (bounded: memory stays flat on any folder)."""

    _DONE = object()

    def __init__(self, files: list[Path], align: Callable[[Path], _Aligned], depth: int = 8) -> None:
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self.stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(files, align), name="facekit-reader", daemon=True)
        self._thread.start()

    def _run(self, files: list[Path], align: Callable[[Path], _Aligned]) -> None:
        try:
            for path in files:
                if self.stop.is_set():
                    return
                self._put(align(path))
        except BaseException as exc:  # raised again on the consumer's side
            self._put(exc)
        finally:
            self._put(self._DONE)

    def _put(self, item: Any) -> None:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def take(self) -> Any:
        """The next item, waiting for it; an exception the reader met is raised here."""
        item = self.queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self.stop.set()
        self._thread.join(timeout=10)


class Predictor:
    """Loaded models and a face finder, ready for many images: the library's way to predict.

    ``image`` answers one photo at a time (an app, a webcam loop); ``stream``
    answers a list of files through the pipeline. ``template`` defaults to the
    one the models were trained with (``framing_for``); ``thorough`` runs both
    detection passes on every photo (``FaceFinder.find``); ``scores`` adds the
    face detector's confidence and box (``FaceFinder``: a fifth of the search
    time, so off unless asked for). ``engine`` (``choices.ENGINES``): ``auto``
    answers with each model's LiteRT conversion where it runs and agrees with
    Keras, else with Keras (``notes`` says why); ``litert`` insists; ``keras``
    never converts. ``timings`` holds the seconds spent in each of ``STAGES`` so far.
    """

    def __init__(self, models: list[LoadedModel], template: Template | None = None, tta: bool = False,
                 max_faces: int = 20, model_dir: str | None = None, thorough: bool = False,
                 batch_size: int = 32, annotate_dir: Path | None = None, scores: bool = False,
                 engine: str = "auto") -> None:
        from facekit.choices import ENGINES
        from facekit.inference.litert import EngineUnavailable, accelerate

        if max_faces < 1:
            raise ValueError(f"max faces must be at least 1, got {max_faces}")
        if batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {batch_size}")
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
        if template is None:
            template, _ = framing_for([lm.path for lm in models], INPUT_SIZE)
        self.models, self.template, self.tta, self.thorough = models, template, tta, thorough
        self.batch_size, self.annotate_dir = batch_size, annotate_dir
        self.engines: dict[str, Any] = {}  # label -> LiteRT twin; absent: the Keras model answers
        self.notes: list[str] = []
        for lm in models if engine != "keras" else []:
            try:
                self.engines[lm.label] = accelerate(lm.model, lm.sha256)
            except EngineUnavailable as exc:
                if engine == "litert":
                    raise ValueError(f"{lm.path}: cannot predict with LiteRT: {exc}") from None
                self.notes.append(f"{lm.path.name}: predicting with Keras ({exc})")
        self._finder = FaceFinder(model_dir=model_dir, max_faces=max_faces, scores=scores)
        self._clock = _Clock()
        self._names: set[str] = set()

    @property
    def timings(self) -> dict[str, float]:
        return dict(self._clock.seconds)

    def close(self) -> None:
        self._finder.close()

    def __enter__(self) -> Predictor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _align(self, path: Path) -> _Aligned:
        return _align_one(path, self._finder, self.template, self.thorough, self.annotate_dir is not None,
                          self._clock)

    def image(self, path: Path) -> ImageResult:
        """One image, every stage in this thread: the latency a single photo sees."""
        return next(self._answer([self._align(Path(path))]))

    def stream(self, files: list[Path]) -> Iterator[ImageResult]:
        """Results for ``files`` (``expand_inputs``) in their order, each as soon as it is answered.

        Streamed output needs no list of results, so a folder of any size runs in flat memory.
        """
        reader = _Reader(files, self._align, depth=2 * self.batch_size)  # aligns the next batch meanwhile
        try:
            done = False
            while not done:
                pending: list[_Aligned] = []
                item = reader.take()
                while True:
                    if item is _Reader._DONE:
                        done = True
                        break
                    pending.append(item)
                    if sum(len(a.faces) for a in pending) >= self.batch_size:
                        break
                    item = reader.take()
                yield from self._answer(pending)
        finally:
            reader.close()

    def _answer(self, pending: list[_Aligned]) -> Iterator[ImageResult]:
        """One forward pass per model over every face of ``pending``, then each image's result."""
        crops = [a.crops for a in pending if a.crops is not None]
        answers: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        if crops:
            t = time.perf_counter()
            x = np.concatenate(crops)
            answers = {lm.label: run(lm, x, tta=self.tta, batch_size=self.batch_size, engine=self.engines.get(lm.label))
                       for lm in self.models}
            self._clock.add("model", t)
        offset = 0
        for a in pending:
            res = a.result
            for i, f in enumerate(a.faces):
                res.faces.append(FaceResult(f.box, f.score, f.points, {
                    label: describe(age[offset + i], gen[offset + i]) for label, (age, gen) in answers.items()}))
            offset += len(a.faces)
            if self.annotate_dir is not None and a.rgb is not None and res.faces:
                name = _unique(f"{a.path.stem}.annotated.png", self._names)
                res.annotated = str(annotate(a.rgb, res, self.annotate_dir / name))
            yield res


def _unique(name: str, used: set[str]) -> str:
    """``name``, or ``stem-2.suffix`` and so on: two folders' ``IMG_0001.jpg`` must not share one annotation."""
    stem, _, suffix = name.partition(".")
    candidate, n = name, 1
    while candidate in used:
        n += 1
        candidate = f"{stem}-{n}.{suffix}"
    used.add(candidate)
    return candidate


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
            template: Template | None = None, recursive: bool = False, thorough: bool = False,
            batch_size: int = 32, scores: bool = False, engine: str = "auto") -> list[ImageResult]:
    """Every result for ``paths`` (files and folders) as a list; ``Predictor.stream`` streams them."""
    files = expand_inputs(paths, recursive)
    results = []
    with Predictor(models, template, tta, max_faces, model_dir, thorough, batch_size, annotate_dir,
                   scores, engine) as predictor:
        for res in predictor.stream(files):
            results.append(res)
            if progress:
                progress(len(results), len(files))
    return results
