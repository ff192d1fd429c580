"""One video through the predictor: sampled frames, faces tracked across them, a summary per track, and an
annotated copy.

Frames go through the photo pipeline (``pipeline.Reader``: decoding, detection
and alignment in the reader thread, the model on batches of faces from many
frames), then through the tracker in frame order, so the annotated video can
show each track's running estimate.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from facekit.data.video import Frame, VideoReadError, VideoSource, VideoWriter
from facekit.face.detect import FaceFinder
from facekit.face.template import Template
from facekit.inference.pipeline import Aligned, Clock, Forward, Reader, answer_batch, find_and_align
from facekit.inference.results import (
    NO_FACE,
    UNREADABLE,
    FaceResult,
    FrameResult,
    TrackSummary,
    VideoResult,
    draw_faces,
    label_line,
)
from facekit.inference.tracking import MAX_MISSED, Tracker


class VideoRun:
    """A video being answered: ``frames`` yields each sampled frame's result, ``result`` the whole video's.

    ``result`` also works after ``frames`` was stopped half-way (Ctrl-C): the
    tracks cover the frames answered so far and the annotated video holds them.
    """

    def __init__(self, path: Path, finder: FaceFinder, template: Template, forward: Forward, clock: Clock,
                 fps: float | None = None, thorough: bool = False, batch_size: int = 32,
                 annotate_to: Path | None = None, max_missed: int = MAX_MISSED) -> None:
        self.path, self.fps, self.thorough, self.batch_size = path, fps, thorough, batch_size
        self._finder, self._template, self._forward, self._clock = finder, template, forward, clock
        self._annotate_to = annotate_to
        self.tracker = Tracker(max_missed)
        self._source: VideoSource | None = None
        self._writer: VideoWriter | None = None
        self._result = VideoResult(str(path))
        self._closed = False

    def _align(self, frame: Frame) -> Aligned:
        t = time.perf_counter()
        faces, crops = find_and_align(frame.rgb, self._finder, self._template, self.thorough, self._clock, t)
        size = (int(frame.rgb.shape[1]), int(frame.rgb.shape[0]))
        result = FrameResult(str(self.path), size=size, frame=frame.index, time_s=frame.time_s)
        return Aligned(self.path, result, crops, faces, frame.rgb if self._annotate_to is not None else None)

    def frames(self) -> Iterator[FrameResult]:
        """Each sampled frame's result in order (frames without a face too: they carry no records but show progress).

        An unreadable video yields nothing, and ``result`` says why.
        """
        try:
            self._source = VideoSource(self.path, self.fps)
        except VideoReadError as exc:
            self._result.status, self._result.error = UNREADABLE, str(exc)
            return
        self._result.size, self._result.rate = self._source.size, self._source.rate
        reader = Reader(self._source.frames(), self._align, depth=2 * self.batch_size)
        try:
            for pending in reader.batches(self.batch_size):
                yield from self._answer(pending)
        except VideoReadError as exc:
            self._result.status, self._result.error = UNREADABLE, str(exc)
        finally:
            reader.close()
            self._source.close()

    def _answer(self, pending: list[Aligned]) -> Iterator[FrameResult]:
        for a, predictions in answer_batch(pending, self._forward):
            res = a.result
            assert isinstance(res, FrameResult)
            tracks = self.tracker.update(res.frame, res.time_s, a.faces)
            for face, track, preds in zip(a.faces, tracks, predictions):
                self.tracker.observe(track, face, preds)
                res.faces.append(FaceResult(face.box, face.score, face.points, preds, track=track.id))
            self._result.frames += 1
            if a.rgb is not None:
                self._annotate(a.rgb, res, {t.id: t for t in tracks})
            yield res

    def _annotate(self, rgb: np.ndarray, res: FrameResult, tracks: dict) -> None:
        if self._writer is None:
            assert self._annotate_to is not None and self._result.rate
            self._writer = VideoWriter(self._annotate_to, self._result.rate, (rgb.shape[1], rgb.shape[0]))
        boxes = [(f.box, label_line(tracks[f.track].estimate(), prefix=f"#{f.track}  ")) for f in res.faces]
        self._writer.write(np.asarray(draw_faces(rgb, boxes)))

    def result(self, interrupted: bool = False) -> VideoResult:
        """The video's summary: a track per face followed (pooled over its frames), or why there is none."""
        if not self._closed:
            self._closed = True
            if self._writer is not None:
                done = self._writer.close()
                self._result.annotated = str(done) if done else None
            res = self._result
            res.interrupted = interrupted
            if self._source is not None:
                notes = [self._source.warning]
                if self._source.fps_assumed:
                    notes.append(f"{self.path}: the file states no frame rate; {self._source.native_fps:g} "
                                 "frames a second assumed for the times")
                res.warning = "; ".join(n for n in notes if n) or None
            res.tracks = [TrackSummary(t.id, t.frames, t.first_frame, t.last_frame, t.first_time_s, t.last_time_s,
                                       t.estimate()) for t in self.tracker.tracks if t.pooled]
            if res.status == "ok" and not res.tracks:
                res.status, res.error = NO_FACE, f"{self.path}: no face found in {res.frames} sampled frames"
        return self._result
