"""Similarity alignment of a face onto the canonical template."""

from __future__ import annotations

import cv2
import numpy as np

from facekit.face.template import Template


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares rotation + uniform scale + translation mapping src onto dst (Umeyama 1991), as 2 x 3."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1
    rot = u @ sign @ vt
    var_s = (s0**2).sum() / len(src)
    scale = np.trace(np.diag(sig) @ sign) / var_s
    t = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, t[:, None]])


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    pts = np.asarray(points, np.float64)
    return pts @ matrix[:, :2].T + matrix[:, 2]


def align_face(rgb: np.ndarray, points: np.ndarray, template: Template) -> np.ndarray:
    """Warp the face with these five points onto the template, as a template.size square crop.

    Large photos are first shrunk with area averaging so the warp does not alias;
    pixels outside the photo repeat its border, as the chips' own crops do.
    """
    matrix = similarity_transform(points, template.points)
    scale = float(np.hypot(matrix[0, 0], matrix[1, 0]))
    if scale < 0.5:
        f = min(1.0, 2.0 * scale)
        h, w = rgb.shape[:2]
        rgb = cv2.resize(rgb, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
        points = np.asarray(points, np.float64) * [rgb.shape[1] / w, rgb.shape[0] / h]
        matrix = similarity_transform(points, template.points)
    return cv2.warpAffine(
        rgb, matrix, (template.size, template.size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
    )
