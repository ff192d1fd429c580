"""The worker side of prep: each process reads, detects and aligns images with its own MediaPipe.

Split from the pipeline so that what crosses the process boundary (the options,
a task, a ``Record``) is visible in one place.
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing as mp
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from facekit.data.detections import Detection
from facekit.data.imageio import ImageReadError, read_rgb, square_resize
from facekit.face.template import Template

Progress = Callable[[int, int], None]  # (done, total)
PREVIEW_SIZE = 128


@dataclass(frozen=True)
class PrepOptions:
    """Options that change the cache's contents (and so its fingerprint)."""

    align: bool = True
    drop_unaligned: bool = False
    min_confidence: float = 0.5
    pad_fraction: float = 0.25

    def __post_init__(self) -> None:
        # Checked here, in the parent: inside a worker a bad value surfaced as MediaPipe's own traceback.
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"min confidence must be in [0, 1], got {self.min_confidence}")
        if self.pad_fraction < 0:
            raise ValueError(f"pad fraction must not be negative, got {self.pad_fraction}")


@dataclass
class Record:
    """What a worker returns for one file."""

    name: str
    error: str | None = None
    image: np.ndarray | None = None
    score: float = float("nan")
    points: np.ndarray = field(default_factory=lambda: np.full((5, 2), np.nan, np.float32))
    aligned: bool = False
    n_faces: int = 0
    content_sha256: str = ""
    size: tuple[int, int] = (0, 0)  # (height, width) of the source image
    preview: np.ndarray | None = None
    reused: bool = False  # same pixels as a row of the previous cache: not detected again, the row is copied
    from_detections: bool = False  # aligned from a detections file's points (same pixels), not detected
    unread: bool = False  # reused on the file's size and modification time alone: not even decoded
    file_size: int = -1
    file_mtime_ns: int = -1


@dataclass(frozen=True)
class Known:
    """What a reusable row knows of its source file (-1: size and time unknown, an older cache)."""

    sha: str
    file_size: int = -1
    file_mtime_ns: int = -1



class PrepError(RuntimeError):
    """The worker processes could not do the job (one failed to start, or died); nothing was written."""



_finder = None
_template: Template | None = None
_options: PrepOptions | None = None
_model_dir: str | None = None
_start_error: str | None = None  # a worker whose start failed says why on its first task, instead of dying
_late_error: str | None = None  # why MediaPipe could not be started when a file first needed it


def _init_worker(options: PrepOptions, template: Template, model_dir: str | None, in_worker: bool,
                 detect_now: bool = True) -> None:
    """``detect_now`` False (every file has saved detections) leaves MediaPipe unloaded until a file
    turns out to need it, so a machine without mediapipe or its model files can prep from detections."""
    global _finder, _template, _options, _model_dir, _start_error, _late_error
    if in_worker:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and cleans up
        # MediaPipe's tasks package imports TensorFlow when it can (optional_dependencies.py), which costs each
        # worker about 3.9 s and 970 MB against 1.0 s and 210 MB without (../shared/docs/findings.md);
        # detection does not use it.
        sys.modules.setdefault("tensorflow", None)  # type: ignore[arg-type]
    _options, _template, _model_dir, _late_error = options, template, model_dir, None
    if options.align and detect_now:
        try:
            _finder = _new_finder(options, model_dir)
        except Exception as exc:
            if not in_worker:
                raise
            _start_error = f"{type(exc).__name__}: {exc}"


def _new_finder(options: PrepOptions, model_dir: str | None) -> Any:
    from facekit.face.detect import FaceFinder

    return FaceFinder(model_dir=model_dir, max_faces=4, min_confidence=options.min_confidence,
                      pad_fraction=options.pad_fraction)


def _finder_for(path: str) -> Any:
    """The worker's MediaPipe finder, started on first need when saved detections made it optional."""
    global _finder, _late_error
    if _finder is None and _late_error is None:
        from facekit.utils.modelfiles import FACE_DETECTOR, FACE_LANDMARKER, ensure_model_file

        assert _options is not None
        try:
            for spec in (FACE_LANDMARKER, FACE_DETECTOR):
                ensure_model_file(spec, _model_dir)
            _finder = _new_finder(_options, _model_dir)
        except Exception as exc:
            _late_error = f"{type(exc).__name__}: {exc}"
    if _finder is None:
        raise PrepError(f"{path}: no saved detection matches its pixels, and MediaPipe could not be started to "
                        f"detect it ({_late_error})")
    return _finder


def _close_worker() -> None:
    global _finder
    if _finder is not None:
        _finder.close()
        _finder = None


def pixel_digest(rgb: np.ndarray) -> str:
    h = hashlib.sha256(f"{rgb.shape}".encode())
    h.update(np.ascontiguousarray(rgb).tobytes())
    return h.hexdigest()


def process_file(task: tuple[str, bool, Known | None, Detection | None]) -> Record:
    """Read, detect and align one file; every failure becomes an error in the Record.

    ``task`` is (path, make a preview, what a reusable row knows of the file or
    None, its saved detection or None). A file whose size and modification time
    match the row's is not read at all (decoding is most of an incremental
    prep's time once detection is skipped: 15 minutes of a 100,000-image folder
    here); one whose pixels match is read and hashed, not detected again; one
    whose pixels match its saved detection is aligned from its points.
    """
    from facekit.face.align import align_face
    from facekit.face.detect import main_face

    if _start_error is not None:
        raise PrepError(f"a prep worker could not start: {_start_error}")
    path, want_preview, known, saved = task
    rec = Record(name=os.path.basename(path))
    try:
        try:
            st = os.stat(path)
            rec.file_size, rec.file_mtime_ns = st.st_size, st.st_mtime_ns
        except OSError:
            pass  # read_rgb says what is wrong with the file
        if (known is not None and not want_preview and known.file_size >= 0
                and (known.file_size, known.file_mtime_ns) == (rec.file_size, rec.file_mtime_ns)):
            rec.content_sha256, rec.reused, rec.unread = known.sha, True, True
            return rec
        rgb = read_rgb(path)
        rec.content_sha256 = pixel_digest(rgb)
        rec.size = (rgb.shape[0], rgb.shape[1])
        if want_preview:
            rec.preview = _letterbox(rgb, PREVIEW_SIZE)
        if known is not None and rec.content_sha256 == known.sha:
            rec.reused = True
            return rec
        assert _template is not None and _options is not None
        size = _template.size
        points, score = None, float("nan")
        if _options.align and saved is not None and saved.sha == rec.content_sha256:
            points, score, rec.n_faces, rec.from_detections = saved.points, saved.score, saved.n_faces, True
        elif _options.align:
            faces = _finder_for(path).find(rgb)
            rec.n_faces = len(faces)
            face = main_face(faces, rgb.shape)
            if face is not None:
                points, score = face.points, face.score
        if points is not None:
            rec.image = align_face(rgb, points, _template)
            rec.points, rec.score, rec.aligned = points, score, True
        else:
            rec.image = square_resize(rgb, size)
    except (ImageReadError, PrepError) as exc:
        rec.error = str(exc)
    except Exception as exc:  # one odd file must never stop a run of thousands
        rec.error = f"{path}: {type(exc).__name__}: {exc}"
    return rec


def _letterbox(rgb: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    img = Image.fromarray(rgb)
    img.thumbnail((size, size), Image.BICUBIC)
    canvas = Image.new("RGB", (size, size))
    canvas.paste(img, ((size - img.width) // 2, (size - img.height) // 2))
    return np.asarray(canvas)


def map_files(
    paths: list[str],
    options: PrepOptions,
    template: Template,
    workers: int,
    model_dir: str | None = None,
    previews: set[int] | None = None,
    known: dict[str, Known] | None = None,
    detections: dict[str, Detection] | None = None,
) -> Iterator[Record]:
    """Process files in order, in ``workers`` processes (1: in this process, the plain loop).

    The model files are made sure of here, in the parent, so a missing one is
    one clear error rather than a failure in every worker. A worker that fails
    to start or dies (a crash in native code, the OOM killer) ends the run with
    a PrepError: ``concurrent.futures`` notices a dead worker, where
    ``multiprocessing.Pool`` silently respawned it and waited forever. Where
    every file has a saved detection MediaPipe is not started (nor its files
    fetched) unless a file's pixels turn out not to match.
    """
    previews, known, detections = previews or set(), known or {}, detections or {}
    tasks = [(p, i in previews, known.get(os.path.basename(p)), detections.get(os.path.basename(p)))
             for i, p in enumerate(paths)]
    detect_now = options.align and any(t[3] is None for t in tasks)
    if detect_now:
        from facekit.utils.modelfiles import FACE_DETECTOR, FACE_LANDMARKER, ensure_model_file

        for spec in (FACE_LANDMARKER, FACE_DETECTOR):
            ensure_model_file(spec, model_dir)
    if workers <= 1:
        _init_worker(options, template, model_dir, in_worker=False, detect_now=detect_now)
        try:
            yield from map(process_file, tasks)
        finally:
            _close_worker()
        return
    chunk = max(1, min(16, len(tasks) // (workers * 8) or 1))
    # spawn: MediaPipe and TensorFlow do not survive fork reliably.
    pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                               initargs=(options, template, model_dir, True, detect_now))
    try:
        with _workers_ignore_ctrl_c():
            results = pool.map(process_file, tasks, chunksize=chunk)  # submits everything: workers start here
        yield from results
    except BrokenProcessPool:
        raise PrepError("a prep worker process died (a crash in native code, or killed for lack of memory); "
                        "nothing was written. `--workers 1` runs in this process and shows the error") from None
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # Ctrl-C must not wait for the queued files


@contextlib.contextmanager
def _workers_ignore_ctrl_c() -> Iterator[None]:
    """Start worker processes with SIGINT ignored from birth.

    A terminal's Ctrl-C reaches the whole process group; a worker still
    importing (before its initializer could ignore SIGINT) printed a
    KeyboardInterrupt traceback. An ignored signal stays ignored across the
    spawn's exec (a blocked one does not: spawn resets the mask), and the
    parent alone handles Ctrl-C and cleans up. A Ctrl-C in the milliseconds
    this takes is ignored too; the next one is not.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


# ---------------------------------------------------------------- parent side


