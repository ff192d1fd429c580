"""CPU-side augmentation with albumentations.

Keras's in-graph geometric layers ran about 100 times slower than a whole
training step on JAX/GPU (docs/findings.md), so augmentation happens on uint8
images in the data loader's worker threads, before the model ever sees them.
"""

from __future__ import annotations

import albumentations as A
import cv2

from facekit.choices import AUGMENT_STRENGTHS as STRENGTHS


def build_augment(strength: str = "default") -> A.Compose | None:
    """The training pipeline for RGB uint8 crops; None for ``none``.

    ``light`` is flip plus a small shift (the published baseline), ``default``
    adds affine, colour and light jitter, blur/noise/JPEG artefacts and coarse
    dropout, ``strong`` widens every range.
    """
    if strength not in STRENGTHS:
        raise ValueError(f"augmentation strength must be one of {', '.join(STRENGTHS)}, got {strength!r}")
    if strength == "none":
        return None
    if strength == "light":
        return A.Compose([
            A.HorizontalFlip(p=0.5),
            A.Affine(translate_percent=(-0.05, 0.05), border_mode=cv2.BORDER_REFLECT_101, p=0.5),
        ])
    k = 1.5 if strength == "strong" else 1.0
    return A.Compose([
        A.HorizontalFlip(p=0.5),
        A.Affine(
            scale=(1 - 0.1 * k, 1 + 0.1 * k), translate_percent=(-0.06 * k, 0.06 * k), rotate=(-10 * k, 10 * k),
            border_mode=cv2.BORDER_REFLECT_101, p=0.8,
        ),
        A.ColorJitter(brightness=0.25 * k, contrast=0.25 * k, saturation=0.25 * k, hue=0.02 * k, p=0.8),
        A.ToGray(p=0.05 * k),
        A.OneOf([
            A.GaussianBlur(blur_limit=(3, 5)),
            A.GaussNoise(std_range=(0.02, 0.05 * k)),
            A.ImageCompression(quality_range=(int(60 / k), 95)),
        ], p=0.3 * k),
        A.CoarseDropout(num_holes_range=(1, 2), hole_height_range=(0.1, 0.25), hole_width_range=(0.1, 0.25),
                        fill=0, p=0.3 * k),
    ])
