"""Face detection and landmarks with MediaPipe Tasks.

MediaPipe's detectors miss faces that fill the whole frame (UTKFace chips are
cropped tight), so every image is padded with a black border before detection
and the results are mapped back. The landmarker gives the five points used
for alignment; the detector gives the confidence score and the face box.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facekit.utils.modelfiles import FACE_DETECTOR, FACE_LANDMARKER, ensure_model_file

# MediaPipe's C++ logging (glog/absl) prints a line per image otherwise; users can still override.
os.environ.setdefault("GLOG_minloglevel", "2")

# Face-mesh indices of the five alignment points, in image order (left to right as seen):
# the image-left eye (outer and inner corner), the image-right eye, the nose tip and the mouth corners.
_EYE_LEFT = (33, 133)
_EYE_RIGHT = (362, 263)
_NOSE_TIP = 1
_MOUTH = (61, 291)
POINT_NAMES = ("eye_left", "eye_right", "nose_tip", "mouth_left", "mouth_right")
# Faces at least this share of the photo's longer side make it a close-up: no second, unpadded pass.
CLOSE_UP = 0.4
# Longer side photos are searched at; MediaPipe scales every image down to 128-256 px inside anyway.
DETECT_MAX_SIDE = 1600


@dataclass(frozen=True)
class Face:
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels of the original image
    score: float  # detector confidence; NaN when only the landmarker found the face
    points: np.ndarray  # (5, 2) float32, POINT_NAMES order, pixels of the original image

    @property
    def area(self) -> float:
        return max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1])


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class FaceFinder:
    """Finds faces and their alignment points; one instance per process (MediaPipe objects do not pickle).

    The landmarker alone finds faces and their points (it runs a detector of its
    own, at ``min_confidence``); ``scores`` adds the separate face detector for a
    confidence score and a detector box per face: about 3 ms more per pass on a
    2-core CPU, a fifth of the search. Without it a face's box is its landmarks'
    extent and its score NaN.
    """

    def __init__(
        self,
        model_dir: str | Path | None = None,
        max_faces: int = 1,
        min_confidence: float = 0.5,
        pad_fraction: float = 0.25,
        scores: bool = True,
    ) -> None:
        from mediapipe.tasks.python import BaseOptions, vision

        self.pad_fraction = pad_fraction
        self._landmarker = vision.FaceLandmarker.create_from_options(
            vision.FaceLandmarkerOptions(
                base_options=BaseOptions(model_asset_path=str(ensure_model_file(FACE_LANDMARKER, model_dir))),
                running_mode=vision.RunningMode.IMAGE,
                num_faces=max_faces,
                min_face_detection_confidence=min_confidence,
                min_face_presence_confidence=min_confidence,
            )
        )
        self._detector = vision.FaceDetector.create_from_options(
            vision.FaceDetectorOptions(
                base_options=BaseOptions(model_asset_path=str(ensure_model_file(FACE_DETECTOR, model_dir))),
                running_mode=vision.RunningMode.IMAGE,
                min_detection_confidence=min(0.3, min_confidence),
            )
        ) if scores else None

    def close(self) -> None:
        for task in (self._landmarker, self._detector):
            if task is not None:
                task.close()

    def __enter__(self) -> FaceFinder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def find(self, rgb: np.ndarray, thorough: bool = False) -> list[Face]:
        """All faces in an RGB uint8 image, left to right, in the image's own pixels.

        The border is a fraction of the shorter side: it rescues faces that fill
        the frame, but shrinks small faces in big photos below what the
        short-range detector sees. So the image is tried again as it is where the
        padded pass found nothing or only faces small beside the photo (a group
        photo may hold more of that size); a chip or a close-up pays for one pass.
        ``thorough`` always runs both passes and merges them. Photos larger than
        ``DETECT_MAX_SIDE`` are searched at that size (the detector sees a 128 px
        image either way) and the boxes and points scaled back.
        """
        h, w = rgb.shape[:2]
        scale = min(1.0, DETECT_MAX_SIDE / max(h, w))
        small = rgb if scale == 1.0 else cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))),
                                                     interpolation=cv2.INTER_AREA)
        sh, sw = small.shape[:2]
        faces = self._find(small, int(round(self.pad_fraction * min(sh, sw)))) if self.pad_fraction > 0 else []
        largest = max((max(f.box[2] - f.box[0], f.box[3] - f.box[1]) for f in faces), default=0.0)
        if thorough or largest < CLOSE_UP * max(sh, sw):
            for extra in self._find(small, 0):
                if all(iou(extra.box, f.box) < 0.4 for f in faces):
                    faces.append(extra)
        if scale != 1.0:
            fx, fy = w / sw, h / sh
            faces = [Face(box=(f.box[0] * fx, f.box[1] * fy, f.box[2] * fx, f.box[3] * fy), score=f.score,
                          points=(f.points * np.array([fx, fy], np.float32)).astype(np.float32)) for f in faces]
        faces.sort(key=lambda f: f.box[0] + f.box[2])
        return faces

    def _find(self, rgb: np.ndarray, pad: int) -> list[Face]:
        import mediapipe as mp

        padded = np.pad(rgb, ((pad, pad), (pad, pad), (0, 0)))
        ph, pw = padded.shape[:2]
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(padded))
        marks = self._landmarker.detect(image).face_landmarks
        dets = []
        for d in self._detector.detect(image).detections if self._detector is not None else []:
            bb = d.bounding_box
            box = (bb.origin_x - pad, bb.origin_y - pad, bb.origin_x + bb.width - pad, bb.origin_y + bb.height - pad)
            dets.append((tuple(float(v) for v in box), float(d.categories[0].score)))
        faces = []
        for lm in marks:
            xy = np.array([(p.x * pw - pad, p.y * ph - pad) for p in lm], dtype=np.float32)
            points = np.stack(
                [
                    xy[list(_EYE_LEFT)].mean(0),
                    xy[list(_EYE_RIGHT)].mean(0),
                    xy[_NOSE_TIP],
                    xy[_MOUTH[0]],
                    xy[_MOUTH[1]],
                ]
            ).astype(np.float32)
            mesh_box = (float(xy[:, 0].min()), float(xy[:, 1].min()), float(xy[:, 0].max()), float(xy[:, 1].max()))
            best = max(dets, key=lambda d: iou(d[0], mesh_box), default=None)
            if best is not None and iou(best[0], mesh_box) > 0.3:
                faces.append(Face(box=best[0], score=best[1], points=points))
            else:
                faces.append(Face(box=mesh_box, score=float("nan"), points=points))
        return faces


def main_face(faces: list[Face], shape: tuple[int, ...]) -> Face | None:
    """The face an image is about: the largest, ties broken by closeness to the centre."""
    if not faces:
        return None
    cy, cx = shape[0] / 2, shape[1] / 2

    def key(f: Face) -> tuple[float, float]:
        fx, fy = (f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2
        return (round(f.area, -1), -((fx - cx) ** 2 + (fy - cy) ** 2))

    return max(faces, key=key)
