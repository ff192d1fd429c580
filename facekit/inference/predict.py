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
``Predictor.image``, with no thread and no batch to wait for. Videos in the
list go through ``video.VideoRun`` on the same finder and models.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from facekit.choices import ENGINES
from facekit.contract import INPUT_SIZE
from facekit.data.imageio import IMAGE_SUFFIXES, ImageReadError, list_files, read_rgb
from facekit.data.video import VIDEO_SUFFIXES, VideoReadError, VideoSource, is_video
from facekit.face.detect import FaceFinder
from facekit.face.template import Template, framing_for
from facekit.inference.litert import EngineUnavailable, accelerate
from facekit.inference.load import LoadedModel, run
from facekit.inference.pipeline import STAGES, Aligned, Clock, Reader, answer_batch, find_and_align
from facekit.inference.results import (
    NO_FACE,
    UNREADABLE,
    FaceResult,
    FrameResult,
    ImageResult,
    VideoResult,
    annotate,
    describe,
    unique_name,
)
from facekit.inference.video import VideoRun

__all__ = ["NO_FACE", "STAGES", "UNREADABLE", "FaceResult", "FrameResult", "ImageResult", "Predictor",
           "VideoResult", "annotate", "count_units", "describe", "expand_inputs", "predict"]
MEDIA_SUFFIXES = IMAGE_SUFFIXES + VIDEO_SUFFIXES
Result = ImageResult | VideoResult  # what the stream yields: a photo, a video's frame (FrameResult), a video


def expand_inputs(paths: list[Path], recursive: bool = False) -> list[Path]:
    """Files as given, folders replaced by the photos and videos inside them (sorted; subfolders with
    ``recursive``).

    A named file is always tried (and reported if it is neither); inside
    folders only image and video suffixes count and hidden files and folders are skipped.
    """
    out: list[Path] = []
    for p in paths:
        if not p.is_dir():
            out.append(p)
        elif recursive:
            found = (q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in MEDIA_SUFFIXES
                     and not any(part.startswith(".") for part in q.relative_to(p).parts))
            out.extend(sorted(found))
        else:
            out.extend(q for q in list_files(p) if q.suffix.lower() in MEDIA_SUFFIXES)
    return out


def count_units(files: list[Path], fps: float | None = None) -> int:
    """Progress units for ``files``: one per photo, one per sampled frame of a video (from its stated frame
    count; 1 for a video that cannot say)."""
    total = 0
    for path in files:
        if not is_video(path):
            total += 1
            continue
        try:
            with VideoSource(path, fps) as source:
                total += source.expected_samples or 1
        except VideoReadError:
            total += 1
    return total


def _align_one(path: Path, finder: FaceFinder, template: Template, thorough: bool, keep_rgb: bool,
               clock: Clock) -> Aligned:
    t = time.perf_counter()
    try:
        rgb = read_rgb(path)
    except ImageReadError as exc:
        clock.add("read", t)
        return Aligned(path, ImageResult(str(path), error=str(exc), status=UNREADABLE))
    t = clock.add("read", t)
    size = (int(rgb.shape[1]), int(rgb.shape[0]))
    faces, crops = find_and_align(rgb, finder, template, thorough, clock, t)
    if not faces:
        return Aligned(path, ImageResult(str(path), error=f"{path}: no face found", status=NO_FACE, size=size))
    return Aligned(path, ImageResult(str(path), size=size), crops, faces, rgb if keep_rgb else None)


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
        self._clock = Clock()
        self._names: set[str] = set()
        self._video: VideoRun | None = None  # the video being answered, for ``interrupted``

    @property
    def timings(self) -> dict[str, float]:
        return dict(self._clock.seconds)

    def close(self) -> None:
        self._finder.close()

    def __enter__(self) -> Predictor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _align(self, path: Path) -> Aligned:
        return _align_one(path, self._finder, self.template, self.thorough, self.annotate_dir is not None,
                          self._clock)

    def image(self, path: Path) -> ImageResult:
        """One image, every stage in this thread: the latency a single photo sees."""
        return next(self._answer([self._align(Path(path))]))

    def stream(self, files: list[Path], fps: float | None = None) -> Iterator[Result]:
        """Results for ``files`` (``expand_inputs``) in their order, each as soon as it is answered.

        A photo gives an ``ImageResult``; a video gives a ``FrameResult`` per
        sampled frame (``fps``: frames per second of video, default every frame
        up to ``DEFAULT_MAX_FPS``), then a ``VideoResult`` with its tracks.
        Streamed output needs no list of results, so a folder of any size runs in flat memory.
        """
        for video, group in itertools.groupby(files, key=is_video):
            if video:
                for path in group:
                    yield from self._one_video(Path(path), fps)
            else:
                yield from self._photos(list(group))

    def _photos(self, files: list[Path]) -> Iterator[ImageResult]:
        reader = Reader(files, self._align, depth=2 * self.batch_size)  # aligns the next batch meanwhile
        try:
            for pending in reader.batches(self.batch_size):
                yield from self._answer(pending)
        finally:
            reader.close()

    def _one_video(self, path: Path, fps: float | None) -> Iterator[FrameResult | VideoResult]:
        annotate_to = None
        if self.annotate_dir is not None:
            annotate_to = self.annotate_dir / unique_name(f"{path.stem}.annotated.mp4", self._names)
        self._video = VideoRun(path, self._finder, self.template, self._forward, self._clock, fps=fps,
                               thorough=self.thorough, batch_size=self.batch_size, annotate_to=annotate_to)
        yield from self._video.frames()
        run, self._video = self._video, None
        yield run.result()

    def interrupted(self) -> VideoResult | None:
        """After the stream was stopped (Ctrl-C) inside a video: that video's result over the frames answered,
        its annotated copy committed with them; None when it stopped between files."""
        run, self._video = self._video, None
        return run.result(interrupted=True) if run is not None else None

    def _forward(self, x: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """One forward pass per model over the crops ``x``: label -> (ages, P(female))."""
        t = time.perf_counter()
        answers = {lm.label: run(lm, x, tta=self.tta, batch_size=self.batch_size, engine=self.engines.get(lm.label))
                   for lm in self.models}
        self._clock.add("model", t)
        return answers

    def _answer(self, pending: list[Aligned]) -> Iterator[ImageResult]:
        """One forward pass per model over every face of ``pending``, then each image's result."""
        for a, predictions in answer_batch(pending, self._forward):
            res = a.result
            res.faces.extend(FaceResult(f.box, f.score, f.points, p) for f, p in zip(a.faces, predictions))
            if self.annotate_dir is not None and a.rgb is not None and res.faces:
                name = unique_name(f"{a.path.stem}.annotated.png", self._names)
                res.annotated = str(annotate(a.rgb, res, self.annotate_dir / name))
            yield res


def predict(paths: list[Path], models: list[LoadedModel], annotate_dir: Path | None = None, tta: bool = False,
            max_faces: int = 20, model_dir: str | None = None, progress: Callable[[int, int], None] | None = None,
            template: Template | None = None, recursive: bool = False, thorough: bool = False,
            batch_size: int = 32, scores: bool = False, engine: str = "auto",
            fps: float | None = None) -> list[Result]:
    """Every result for ``paths`` (files and folders) as a list; ``Predictor.stream`` streams them."""
    files = expand_inputs(paths, recursive)
    total = count_units(files, fps)
    results: list[Result] = []
    done = 0
    with Predictor(models, template, tta, max_faces, model_dir, thorough, batch_size, annotate_dir,
                   scores, engine) as predictor:
        for res in predictor.stream(files, fps):
            results.append(res)
            done += not isinstance(res, VideoResult)
            if progress:
                progress(done, max(total, done))
    return results
