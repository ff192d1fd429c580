"""Video in and out: frames sampled at a steady rate from whatever OpenCV decodes, and an annotated copy that is
complete or absent.

OpenCV is already installed with facekit (MediaPipe and albumentations bring it), and its FFmpeg build reads
MP4, MOV, MKV, AVI, WebM and the usual codecs, so no new dependency is needed. Frames are sampled by their
index and the container's frame rate: skipped frames are only grabbed (demuxed and decoded, never converted
to RGB), which is most of the saving when a 30 fps clip is read at 10.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from facekit.data.imageio import IMAGE_SUFFIXES
from facekit.utils.atomic import PendingFile

# FFmpeg's own lines ("moov atom not found", "overread 8") name no file and say less than VideoReadError's
# message and the early-stop warning; read by OpenCV when it first opens a video. Set it to debug a codec.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

# What a folder's videos are (any case); a named file with another suffix that is no image is tried as a video.
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp",
                  ".ts", ".mts")
DEFAULT_MAX_FPS = 10.0  # the default sampling: every frame, at most this many per second of video
ASSUMED_FPS = 25.0  # when a container states no usable frame rate (FFmpeg's own default)


class VideoReadError(Exception):
    """A video that cannot be used, the file and the reason in the message; ``kind`` as ``ImageReadError``'s."""

    def __init__(self, message: str, kind: str = "unreadable") -> None:
        super().__init__(message)
        self.kind = kind  # "missing", "empty", "not_video", "damaged"


def is_video(path: str | Path) -> bool:
    """A video suffix, or a file with a suffix that is neither an image's nor a video's that OpenCV opens and
    PIL does not (``clip.bin`` from a camera): what predict sends through the video path."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES or suffix in IMAGE_SUFFIXES or not path.is_file():
        return suffix in VIDEO_SUFFIXES
    try:
        with Image.open(path):
            return False
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        pass
    cap = cv2.VideoCapture(str(path))
    try:
        return bool(cap.isOpened() and cap.grab())
    finally:
        cap.release()


@dataclass(frozen=True)
class Frame:
    index: int  # 0-based, counting every frame of the video, sampled or not
    time_s: float  # index / the container's frame rate
    rgb: np.ndarray


class VideoSource:
    """One video opened for sampling; ``frames`` yields the sampled frames, once.

    ``fps`` is the sampling rate asked for (None: every frame, at most
    ``DEFAULT_MAX_FPS``); it never exceeds the video's own rate. After
    ``frames`` ends, ``decoded`` counts the frames read and ``warning`` says
    if decoding stopped well before the frame count the container states.
    """

    def __init__(self, path: str | Path, fps: float | None = None) -> None:
        self.path = Path(path)
        if fps is not None and not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"the sampling rate must be a positive number of frames per second, got {fps}")
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            raise VideoReadError(f"{self.path}: file not found", "missing") from None
        except OSError as exc:
            raise VideoReadError(f"{self.path}: {exc.strerror or exc}") from None
        if self.path.is_dir():
            raise VideoReadError(f"{self.path}: a folder, not a video file", "not_video")
        if size == 0:
            raise VideoReadError(f"{self.path}: empty file (zero bytes)", "empty")
        self._cap = cv2.VideoCapture(str(self.path))
        if not self._cap.isOpened():
            self._cap.release()
            raise VideoReadError(f"{self.path}: cannot be read as a video (not a video, or damaged: the container "
                                 "could not be opened)", "not_video")
        native = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps_assumed = not (math.isfinite(native) and 0 < native <= 1000)
        self.native_fps = ASSUMED_FPS if self.fps_assumed else float(native)
        self.rate = min(self.native_fps, fps if fps is not None else DEFAULT_MAX_FPS)
        count = self._cap.get(cv2.CAP_PROP_FRAME_COUNT)
        self.frame_count = int(count) if math.isfinite(count) and count > 0 else None
        self.size = (int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        self.decoded = 0
        self.warning: str | None = None

    @property
    def expected_samples(self) -> int | None:
        """How many frames ``frames`` should yield, from the stated frame count (None when the container has none)."""
        if self.frame_count is None:
            return None
        return math.ceil(self.frame_count * self.rate / self.native_fps - 1e-9)

    def frames(self) -> Iterator[Frame]:
        """The sampled frames, in order. Raises VideoReadError when not one frame decodes."""
        step = self.native_fps / self.rate
        next_pick, index = 0.0, 0
        try:
            while self._cap.grab():
                if index + 1e-6 >= next_pick:
                    ok, bgr = self._cap.retrieve()
                    if not ok or bgr is None or bgr.ndim != 3 or bgr.size == 0:
                        break
                    if self.size == (0, 0):
                        self.size = (int(bgr.shape[1]), int(bgr.shape[0]))
                    next_pick += step
                    yield Frame(index, round(index / self.native_fps, 3), cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
                index += 1
        finally:
            self.decoded = index
        if index == 0:
            raise VideoReadError(f"{self.path}: no frame could be decoded (a zero-length or damaged video)",
                                 "damaged")
        if self.frame_count and index < self.frame_count - max(2, self.frame_count // 100):
            seconds = index / self.native_fps
            self.warning = (f"{self.path}: decoding stopped at frame {index} of the {self.frame_count} the file "
                            f"states (damaged or cut short); the results cover its first {seconds:.1f} s")

    def close(self) -> None:
        self._cap.release()

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class VideoWriteError(OSError):
    """An annotated video that cannot be written (no encoder for MP4 in this OpenCV, a folder not writable)."""


class VideoWriter:
    """An MP4 written frame by frame beside ``dest`` and renamed over it by ``close`` (``PendingFile``).

    Closed with at least one frame, it is a whole, playable video, also after
    Ctrl-C; with none, nothing is left behind. MPEG-4 Part 2 (``mp4v``) is the
    codec every OpenCV build can write.
    """

    def __init__(self, dest: str | Path, fps: float, size: tuple[int, int]) -> None:
        self._pending = PendingFile(dest)
        self._writer = cv2.VideoWriter(str(self._pending.tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), size)
        if not self._writer.isOpened():
            self._pending.discard()
            raise VideoWriteError(f"{dest}: OpenCV cannot write an MP4 video here (no encoder, or the folder is "
                                  "not writable)")
        self.size, self.frames = size, 0
        self._closed = False

    def write(self, rgb: np.ndarray) -> None:
        if (rgb.shape[1], rgb.shape[0]) != self.size:
            rgb = cv2.resize(rgb, self.size, interpolation=cv2.INTER_AREA)
        self._writer.write(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self) -> Path | None:
        """The finished video's path, or None when no frame was written (the temporary file is removed)."""
        if self._closed:
            return self._pending.dest if self.frames else None
        self._closed = True
        self._writer.release()
        if not self.frames:
            self._pending.discard()
            return None
        return self._pending.commit()
