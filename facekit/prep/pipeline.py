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
image whose pixels match its row from the saved points, without MediaPipe (``facekit.data.detections``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facekit import __version__
from facekit.contract import INPUT_SIZE
from facekit.data.cache import SCHEMA_VERSION, CacheError, CacheWriter, SchemaMismatch, read_attrs
from facekit.data.detections import load_detections, save_detections
from facekit.data.imageio import list_files
from facekit.data.labels import Label, Rejection, parse_name
from facekit.face.template import Template, load_template
from facekit.prep.reuse import PARTIAL, PARTIAL_PREVIOUS, ReusableRows, keep_larger, lock_path
from facekit.prep.workers import PrepOptions, Progress, map_files
from facekit.utils.atomic import output_path, write_json
from facekit.utils.locking import LockHeld, file_lock

N_PREVIEWS = 12


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
    on_wait: Callable[[str], None] | None = None,
) -> PrepResult:
    """Build (or reuse) the cache for ``folder``; see the module docstring.

    Two preps of one cache never write at once: the second waits for the first (``on_wait`` says so), then
    finds the cache up to date or goes on from it.

    ``detections`` aligns from a saved detections file where the pixels match;
    ``save_detections_to`` writes the finished cache's detections there (also
    when the cache was up to date), for a later prep elsewhere.
    """

    folder = Path(folder)
    files = list_files(folder)
    out = Path(out) if out else default_cache_path(folder)
    out = output_path(out)  # a link is written through: the cache and its sidecars go beside its target
    # Crops are the model's input size whatever chips the template was derived from.
    template = (template or load_template()).at_size(INPUT_SIZE)
    fp = fingerprint(files, options, template)
    report_path = sidecar(out, ".report.json")
    # Read before anything is written: a file that cannot be used must not cost a run.
    saved = load_detections(detections, asdict(options)) if detections is not None else None
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(file_lock(lock_path(out), wait=False))
        except LockHeld as exc:  # another prep writes this cache: wait, then find it up to date or go on from it
            if on_wait:
                on_wait(f"another prep{f' (pid {exc.holder})' if exc.holder else ''} is writing {out}; waiting "
                        "for it to finish")
            held.enter_context(file_lock(lock_path(out)))
        return _prep_locked(folder, files, out, options, workers, force, model_dir, template, progress, seed,
                            saved, save_detections_to, fp, report_path)


def _prep_locked(folder: Path, files: list[Path], out: Path, options: PrepOptions, workers: int | None, force: bool,
                 model_dir: str | None, template: Template, progress: Progress | None, seed: int,
                 saved: Any, save_detections_to: str | Path | None, fp: str, report_path: Path) -> PrepResult:
    """prep's work, with the cache's lock held: one writer per cache, so a second run never moves the partial
    file of a first from under it."""
    from facekit.data.report import build_report, contact_sheet, pairs_sheet  # matplotlib: only when writing

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
        keep_larger(partial, previous)
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


