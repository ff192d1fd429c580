"""Faces followed across a video's sampled frames, and each track's age and gender pooled over its frames.

Matching is greedy on box overlap plus landmark distance, with each track's
box moved on by its last velocity first: at 10 sampled frames a second a face
moves a fraction of its width between frames, so overlap alone matches it;
the landmarks keep two overlapping faces apart and the velocity keeps a fast
pan together. It needs no appearance model, so it costs microseconds a frame.
A face unseen for more than ``MAX_MISSED`` sampled frames ends its track; if it
comes back it starts a new one (facekit does not re-identify faces).

A track's estimate is a weighted mean over its frames: large, frontal faces
that the detector is sure of count more than small, turned or doubtful ones
(``quality``). Its spread is the weighted standard deviation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from facekit.contract import INPUT_SIZE, predicted_female
from facekit.face.detect import iou

MAX_MISSED = 5  # sampled frames a track survives without its face (half a second at the default 10 a second)
MIN_IOU = 0.2  # a match needs this overlap with the predicted box ...
MAX_POINT_DISTANCE = 0.5  # ... or landmarks this close, in face widths (mean over the five points)


def quality(box: tuple[float, ...], points: np.ndarray, score: float = math.nan) -> float:
    """How much a face's prediction should count, in (0, 1].

    Size: a face narrower than the model's input is upsampled and loses
    detail (full weight from ``INPUT_SIZE`` px). Frontality: the nose tip's
    offset from the eyes' midpoint, in eye distances (a profile is far off).
    The detector's confidence multiplies in where ``--scores`` measured it.
    """
    width = max(1.0, min(box[2] - box[0], box[3] - box[1]))
    size = min(1.0, width / INPUT_SIZE)
    eyes = np.asarray(points[:2], np.float64)
    eye_distance = float(np.linalg.norm(eyes[1] - eyes[0]))
    offset = abs(float(points[2][0]) - float(eyes[:, 0].mean())) / max(eye_distance, 1.0)
    frontal = max(0.0, 1.0 - offset)
    confidence = score if math.isfinite(score) else 1.0
    return max(1e-3, size * frontal * confidence)


@dataclass
class _Pooled:
    """Weighted sums of one model's answers for one track: mean and spread in O(1) memory."""

    weight: float = 0.0
    age: float = 0.0
    age_sq: float = 0.0
    p: float = 0.0
    p_sq: float = 0.0

    def add(self, w: float, age: float, p: float) -> None:
        self.weight += w
        self.age += w * age
        self.age_sq += w * age * age
        self.p += w * p
        self.p_sq += w * p * p

    def summary(self) -> dict[str, Any]:
        mean_age, mean_p = self.age / self.weight, self.p / self.weight
        std_age = math.sqrt(max(0.0, self.age_sq / self.weight - mean_age**2))
        std_p = math.sqrt(max(0.0, self.p_sq / self.weight - mean_p**2))
        return {"age": round(mean_age, 1), "age_std": round(std_age, 2), "p_female": round(mean_p, 4),
                "p_female_std": round(std_p, 4), "gender": "female" if predicted_female(mean_p) else "male"}


@dataclass
class Track:
    id: int  # 1-based, in order of first appearance
    box: tuple[float, float, float, float]
    points: np.ndarray
    last_frame: int
    first_frame: int
    first_time_s: float
    last_time_s: float
    velocity: tuple[float, float] = (0.0, 0.0)  # box centre's pixels per video frame
    missed: int = 0
    frames: int = 1
    pooled: dict[str, _Pooled] = field(default_factory=dict)

    def predicted_box(self, frame: int) -> tuple[float, float, float, float]:
        dt = frame - self.last_frame
        dx, dy = self.velocity[0] * dt, self.velocity[1] * dt
        x0, y0, x1, y1 = self.box
        return (x0 + dx, y0 + dy, x1 + dx, y1 + dy)

    def estimate(self) -> dict[str, dict[str, Any]]:
        """Model label -> the pooled age, P(female), their spreads and the gender, over the frames so far."""
        return {label: pooled.summary() for label, pooled in self.pooled.items()}


def _centre(box: tuple[float, ...]) -> tuple[float, float]:
    return ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)


class Tracker:
    """Assigns each sampled frame's faces to tracks; ``tracks`` keeps every track ever started, by id."""

    def __init__(self, max_missed: int = MAX_MISSED) -> None:
        if max_missed < 0:
            raise ValueError(f"max missed frames must be at least 0, got {max_missed}")
        self.max_missed = max_missed
        self.tracks: list[Track] = []
        self._active: list[Track] = []

    def update(self, frame: int, time_s: float, faces: list[Any]) -> list[Track]:
        """The track of each face (``box``, ``points``), in the faces' order; unmatched faces start tracks."""
        pairs = []
        for ti, track in enumerate(self._active):
            guess = track.predicted_box(frame)
            width = max(1.0, track.box[2] - track.box[0])
            shift = np.array(_centre(guess)) - np.array(_centre(track.box))
            for fi, face in enumerate(faces):
                overlap = iou(guess, face.box)
                distance = float(np.linalg.norm(np.asarray(face.points) - (track.points + shift), axis=1).mean())
                distance /= width
                if overlap >= MIN_IOU or distance <= MAX_POINT_DISTANCE:
                    pairs.append((overlap + (1.0 - min(distance, 1.0)), ti, fi))
        taken_tracks: set[int] = set()
        assigned: dict[int, Track] = {}
        for _, ti, fi in sorted(pairs, key=lambda p: -p[0]):
            if ti in taken_tracks or fi in assigned:
                continue
            taken_tracks.add(ti)
            track, face = self._active[ti], faces[fi]
            dt = max(1, frame - track.last_frame)
            old, new = _centre(track.box), _centre(face.box)
            track.velocity = ((new[0] - old[0]) / dt, (new[1] - old[1]) / dt)
            track.box, track.points = tuple(face.box), np.asarray(face.points, np.float64)
            track.last_frame, track.last_time_s, track.missed = frame, time_s, 0
            track.frames += 1
            assigned[fi] = track
        for ti, track in enumerate(self._active):
            if ti not in taken_tracks:
                track.missed += 1
        self._active = [t for t in self._active if t.missed <= self.max_missed]
        for fi, face in enumerate(faces):
            if fi not in assigned:
                track = Track(len(self.tracks) + 1, tuple(face.box), np.asarray(face.points, np.float64), frame,
                              frame, time_s, time_s)
                self.tracks.append(track)
                self._active.append(track)
                assigned[fi] = track
        return [assigned[fi] for fi in range(len(faces))]

    @staticmethod
    def observe(track: Track, face: Any, predictions: dict[str, dict[str, Any]]) -> None:
        """Pools one frame's answers (``describe``'s dicts, label -> age, p_female) into ``track``."""
        w = quality(face.box, np.asarray(face.points), getattr(face, "score", math.nan))
        for label, p in predictions.items():
            track.pooled.setdefault(label, _Pooled()).add(w, float(p["age"]), float(p["p_female"]))
