"""``facekit prep``: a folder of labelled face images becomes an HDF5 cache of aligned crops.

Work per image (read, detect, align) runs in worker processes, each with its
own MediaPipe instances; the parent writes records in file order into
``<cache>.partial.h5``, which replaces the cache only when everything
succeeded. A bad image is recorded and skipped, never fatal.

Prep is incremental: a file whose size and modification time match its row in
the cache it replaces (or in the partial file an interrupted run left) is not
read at all, and one whose decoded pixels match is read and hashed but not
detected again; either way its row is copied, the crop still compressed.
Adding 10 files to a folder of 5,000 detects 10 and reads 10 (and the 12 preview images). ``--force``
detects everything. ``--detections FILE`` (saved from a cache by ``--save-detections``) aligns each
image whose pixels match its row from the saved points, without MediaPipe (``facekit.detections``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import multiprocessing as mp
import os
import random
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facekit import __version__
from facekit.atomic import write_json
from facekit.cache import SCHEMA_VERSION, CacheError, CacheWriter, SchemaMismatch, StoredCrop, read_attrs
from facekit.contract import INPUT_SIZE
from facekit.detections import Detection, load_detections, save_detections
from facekit.imageio import ImageReadError, list_files, read_rgb, square_resize
from facekit.labels import Label, Rejection, parse_name
from facekit.template import Template, load_template

Progress = Callable[[int, int], None]  # (done, total)
N_PREVIEWS = 12
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


@dataclass
class PrepResult:
    cache: Path
    report: dict[str, Any]
    reused: bool
    report_path: Path
    samples_png: Path | None = None
    pairs_png: Path | None = None
    reused_rows: int = 0  # rows copied from the previous cache or an interrupted run's, not detected again
    from_detections: int = 0  # rows aligned from a detections file's points, not detected


class PrepError(RuntimeError):
    """The worker processes could not do the job (one failed to start, or died); nothing was written."""


# ---------------------------------------------------------------- worker side

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
    from facekit.detect import FaceFinder

    return FaceFinder(model_dir=model_dir, max_faces=4, min_confidence=options.min_confidence,
                      pad_fraction=options.pad_fraction)


def _finder_for(path: str) -> Any:
    """The worker's MediaPipe finder, started on first need when saved detections made it optional."""
    global _finder, _late_error
    if _finder is None and _late_error is None:
        from facekit.modelfiles import FACE_DETECTOR, FACE_LANDMARKER, ensure_model_file

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
    from facekit.align import align_face
    from facekit.detect import main_face

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
        from facekit.modelfiles import FACE_DETECTOR, FACE_LANDMARKER, ensure_model_file

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


def fingerprint(files: list[Path], options: PrepOptions, template: Template) -> str:
    """Changes whenever the folder's files, the options, the template or the schema change."""
    h = hashlib.sha256(json.dumps([SCHEMA_VERSION, asdict(options), template.digest()]).encode())
    for p in files:
        st = p.stat()
        h.update(f"{p.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def default_cache_path(folder: Path) -> Path:
    return Path("cache") / f"{folder.resolve().name}.h5"


def sidecar(cache: Path, suffix: str) -> Path:
    return cache.with_name(cache.stem + suffix)


def prep(
    folder: str | Path,
    out: str | Path | None = None,
    options: PrepOptions = PrepOptions(),
    workers: int | None = None,
    force: bool = False,
    model_dir: str | None = None,
    template: Template | None = None,
    progress: Progress | None = None,
    seed: int = 0,
    detections: str | Path | None = None,
    save_detections_to: str | Path | None = None,
) -> PrepResult:
    """Build (or reuse) the cache for ``folder``; see the module docstring.

    ``detections`` aligns from a saved detections file where the pixels match;
    ``save_detections_to`` writes the finished cache's detections there (also
    when the cache was up to date), for a later prep elsewhere.
    """
    from facekit.report import build_report, contact_sheet, pairs_sheet

    folder = Path(folder)
    files = list_files(folder)
    out = Path(out) if out else default_cache_path(folder)
    if out.is_dir():
        raise IsADirectoryError(f"{out}: is a directory; --out names the cache file (e.g. {out / 'cache.h5'})")
    # Crops are the model's input size whatever chips the template was derived from.
    template = (template or load_template()).at_size(INPUT_SIZE)
    fp = fingerprint(files, options, template)
    report_path = sidecar(out, ".report.json")
    # Read before anything is written: a file that cannot be used must not cost a run.
    saved = load_detections(detections, asdict(options)) if detections is not None else None
    if out.exists() and not force and _existing_fingerprint(out) == fp and report_path.exists():
        if save_detections_to is not None:
            save_detections(out, save_detections_to)
        return PrepResult(out, json.loads(report_path.read_text()), True, report_path)

    labelled: list[tuple[Path, Label]] = []
    rejected: list[dict[str, str]] = []
    repaired: list[dict[str, Any]] = []
    for p in files:
        parsed = parse_name(p.name)
        if isinstance(parsed, Rejection):
            rejected.append({"file": p.name, "reason": parsed.reason, "detail": parsed.detail})
            continue
        if parsed.notes:
            repaired.append({"file": p.name, "notes": list(parsed.notes)})
        labelled.append((p, parsed))
    if not labelled:
        raise ValueError(f"{folder}: no file with a UTKFace label in its name ({len(rejected)} rejected)")

    rng = random.Random(seed)
    preview_idx = set(rng.sample(range(len(labelled)), min(N_PREVIEWS, len(labelled)))) if options.align else set()
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    workers = workers or os.cpu_count() or 1
    attrs = {
        "schema_version": SCHEMA_VERSION,
        "facekit_version": __version__,
        "channel_order": "RGB",
        "image_size": template.size,
        "template": json.dumps(template.to_json()),
        "options": json.dumps(asdict(options)),
        "source_dir": str(folder.resolve()),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "fingerprint": fp,
    }
    unreadable: list[dict[str, str]] = []
    kept: list[dict[str, Any]] = []
    dropped: list[str] = []
    pairs: list[tuple[np.ndarray, np.ndarray, str]] = []
    partial, previous = sidecar(out, PARTIAL), sidecar(out, PARTIAL_PREVIOUS)
    out.parent.mkdir(parents=True, exist_ok=True)
    if partial.exists():  # an interrupted run's rows: read from under another name while this run writes anew
        os.replace(partial, previous)
    reusable = ReusableRows([] if force else [previous, out], options, template)
    reused_rows = unread_rows = from_detections = 0
    try:
        writer = CacheWriter(partial, template.size, attrs)
        try:
            records = map_files([str(p) for p, _ in labelled], options, template, workers, model_dir, preview_idx,
                                reusable.known(), saved)
            for i, rec in enumerate(records):
                label = labelled[i][1]
                if progress:
                    progress(i + 1, len(labelled))
                if rec.error:
                    unreadable.append({"file": rec.name, "reason": rec.error})
                    continue
                row = reusable.row(rec.name) if rec.reused else {
                    "images": rec.image, "score": rec.score, "landmarks": rec.points, "aligned": rec.aligned,
                    "n_faces": rec.n_faces}
                reused_rows += rec.reused
                from_detections += rec.from_detections
                unread_rows += rec.unread
                if rec.preview is not None:
                    crop = reusable.crop(rec.name) if rec.reused else row["images"]
                    pairs.append((rec.preview, crop, _caption(label)))
                if options.align and not row["aligned"] and options.drop_unaligned:
                    dropped.append(rec.name)
                    continue
                writer.append(**row, age=label.age, gender=label.gender, race=label.race, filename=rec.name,
                              content_sha256=rec.content_sha256.encode(), file_size=rec.file_size,
                              file_mtime_ns=rec.file_mtime_ns)
                kept.append({"file": rec.name, "age": label.age, "gender": label.gender, "race": label.race,
                             "aligned": bool(row["aligned"]), "n_faces": int(row["n_faces"]),
                             "sha": rec.content_sha256})
        finally:
            writer.close()  # flushed and closed even when interrupted: the next run resumes from these rows
        if not kept:
            raise ValueError(f"{folder}: no image could be read ({len(unreadable)} unreadable)")
    except BaseException:
        _keep_larger(partial, previous)
        raise
    finally:
        reusable.close()
    os.replace(partial, out)  # atomic: the old cache stays whole until the new one is complete
    previous.unlink(missing_ok=True)
    report = build_report(folder, out, files, kept, rejected, repaired, unreadable, dropped, options)
    report["counts"]["reused_rows"] = reused_rows  # rows copied from the previous cache, not detected again
    report["counts"]["unread_files"] = unread_rows  # of those, files unchanged in size and time: not even read
    report["counts"]["from_detections"] = from_detections  # aligned from the saved points, not detected
    write_json(report_path, report)
    if save_detections_to is not None:
        save_detections(out, save_detections_to)
    samples_png = contact_sheet(out, sidecar(out, ".samples.png"), seed=seed)
    pairs_png = pairs_sheet(pairs, sidecar(out, ".aligned.png")) if pairs else None
    return PrepResult(out, report, False, report_path, samples_png, pairs_png, reused_rows, from_detections)


def _caption(label: Label) -> str:
    return f"{label.age} {'F' if label.gender else 'M'}"


def _existing_fingerprint(path: Path) -> str | None:
    """The fingerprint of an existing cache; None if it is unreadable (it is then rebuilt).

    A readable cache of another schema is an error rather than a silent rebuild,
    so that a user notices that the cache format changed.
    """
    try:
        attrs = read_attrs(path)
    except SchemaMismatch:
        raise
    except CacheError:
        return None
    return str(attrs.get("fingerprint"))


PARTIAL = ".partial.h5"  # rows written so far; an interrupted prep leaves it and the next run resumes from it
PARTIAL_PREVIOUS = ".partial.prev.h5"


@dataclass(frozen=True)
class Known:
    """What a reusable row knows of its source file (-1: size and time unknown, an older cache)."""

    sha: str
    file_size: int = -1
    file_mtime_ns: int = -1


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


def _keep_larger(partial: Path, previous: Path) -> None:
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


def derive_template(
    folder: str | Path,
    limit: int | None = None,
    workers: int | None = None,
    model_dir: str | None = None,
    progress: Progress | None = None,
    seed: int = 0,
) -> Template:
    """Measure the five points on the chips of ``folder`` and take their median as the template.

    All images must share one square size (the chips' own framing is what is
    being measured). ``limit`` takes a random sample for a quicker estimate.
    """
    from facekit.template import template_from_points

    folder = Path(folder)
    files = [p for p in list_files(folder) if isinstance(parse_name(p.name), Label)]
    if not files:
        raise ValueError(f"{folder}: no file with a UTKFace label in its name, so no chip to measure")
    if limit and limit < len(files):
        files = sorted(random.Random(seed).sample(files, limit))
    options = PrepOptions()
    current = load_template()
    points, sizes = [], set()
    for i, rec in enumerate(map_files([str(p) for p in files], options, current, workers or os.cpu_count() or 1,
                                      model_dir)):
        if progress:
            progress(i + 1, len(files))
        if rec.error:
            continue
        points.append(rec.points)
        sizes.add(rec.size)
    if not sizes:
        raise ValueError(f"{folder}: none of the {len(files)} images could be read")
    if len(sizes) != 1:
        raise ValueError(f"{folder}: images of several sizes {sorted(sizes)}; a template needs chips of one size")
    (h, w), = sizes
    if h != w:
        raise ValueError(f"{folder}: chips are {w} x {h}; a template needs square chips")
    meta = {
        "source_dir": folder.name,
        "images": len(points),
        "statistic": "median over chips of the FaceFinder points (padded detection)",
        "command": f"facekit template {folder.name}" + (f" --limit {limit}" if limit else ""),
        "facekit_version": __version__,
        "created": dt.date.today().isoformat(),
    }
    return template_from_points(np.stack(points), h, meta)
