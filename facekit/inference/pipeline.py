"""The two-stage pipeline photos and video frames share: a reader thread finds and aligns faces while the caller
runs the model on batches of them.

MediaPipe, OpenCV and the Keras backend release the GIL, so the stages
overlap. The queue between them is bounded, so memory stays flat on a folder
of any size or an hour of video.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np

from facekit.contract import rgb_to_input
from facekit.face.align import align_face
from facekit.face.detect import Face, FaceFinder
from facekit.face.template import Template
from facekit.inference.results import ImageResult, describe

STAGES = ("read", "detect", "align", "model")  # where the time goes (the benchmark reports each share)
T = TypeVar("T")


@dataclass
class Aligned:
    """One picture after the reader stage: its faces and their crops, or why it has none."""

    path: Path
    result: ImageResult
    crops: np.ndarray | None = None  # (faces, 128, 128, 3) model input
    faces: list[Face] = field(default_factory=list)
    rgb: np.ndarray | None = None  # kept only for annotation


class Clock:
    """Seconds per pipeline stage, summed over the pictures (the reader's stages overlap the model's)."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self._lock = threading.Lock()

    def add(self, stage: str, since: float) -> float:
        now = time.perf_counter()
        with self._lock:
            self.seconds[stage] += now - since
        return now


def find_and_align(rgb: np.ndarray, finder: FaceFinder, template: Template, thorough: bool, clock: Clock,
                   since: float) -> tuple[list[Face], np.ndarray | None]:
    """Faces of one decoded picture and their model-ready crops (None without a face): prep's framing exactly."""
    faces = finder.find(rgb, thorough=thorough)
    t = clock.add("detect", since)
    if not faces:
        return faces, None
    crops = rgb_to_input(np.stack([align_face(rgb, f.points, template) for f in faces]))
    clock.add("align", t)
    return faces, crops


Forward = Callable[[np.ndarray], dict[str, tuple[np.ndarray, np.ndarray]]]


def answer_batch(pending: list[Aligned], forward: Forward) -> Iterator[tuple[Aligned, list[dict[str, Any]]]]:
    """One forward pass per model over every face of ``pending``, then each picture with its faces' answers
    (model label -> ``describe``), in order: the batching photos and video frames share."""
    crops = [a.crops for a in pending if a.crops is not None]
    answers = forward(np.concatenate(crops)) if crops else {}
    offset = 0
    for a in pending:
        yield a, [{label: describe(age[offset + i], gen[offset + i]) for label, (age, gen) in answers.items()}
                  for i in range(len(a.faces))]
        offset += len(a.faces)


class Reader(Generic[T]):
    """The reader stage in a thread: ``work`` applied to each item (iterated in the thread, so a video decodes
    there too), results in a short queue."""

    DONE = object()

    def __init__(self, items: Iterable[T], work: Callable[[T], Any], depth: int = 8) -> None:
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self.stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(items, work), name="facekit-reader", daemon=True)
        self._thread.start()

    def _run(self, items: Iterable[T], work: Callable[[T], Any]) -> None:
        try:
            for item in items:
                if self.stop.is_set():
                    return
                self._put(work(item))
        except BaseException as exc:  # raised again on the consumer's side
            self._put(exc)
        finally:
            self._put(self.DONE)

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

    def batches(self, batch_size: int) -> Iterable[list[Any]]:
        """The items in order, grouped until a group holds ``batch_size`` faces (or the items end)."""
        pending: list[Any] = []
        while True:
            item = self.take()
            if item is self.DONE:
                break
            pending.append(item)
            if sum(len(a.faces) for a in pending) >= batch_size:
                yield pending
                pending = []
        if pending:
            yield pending

    def close(self) -> None:
        self.stop.set()
        self._thread.join(timeout=10)
