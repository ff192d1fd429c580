"""Robust image reading: whatever a user's folder holds becomes RGB uint8, or a clear error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from facekit.contract import INPUT_SIZE

# What counts as an image file, for every command: prep, predict and evaluate read exactly these (any
# case), so a folder means the same files to each.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")

Image.MAX_IMAGE_PIXELS = 100_000_000  # a face photo never needs more; guards against decompression bombs


class ImageReadError(Exception):
    """An image file that cannot be used, with the file and the reason in its message."""


def _to_rgb(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        gray = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        top = 1.0 if arr.max(initial=0) <= 1.0 else 255.0
        gray = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        # Transparent areas become black, the same as the padding used before detection.
        rgba = img.convert("RGBA")
        base = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return np.asarray(Image.alpha_composite(base, rgba).convert("RGB"))
    return np.asarray(img.convert("RGB"))


def read_rgb(path: str | Path) -> np.ndarray:
    """Read any still image as (H, W, 3) RGB uint8, applying EXIF orientation.

    16-bit and float images are scaled to 8 bits, grey and palette images are
    expanded, and transparency is composited on black. Raises ImageReadError
    naming the file for empty, truncated, corrupt or non-image files.
    """
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise ImageReadError(f"{path}: empty file")
        with Image.open(path) as img:
            img.load()
            img = ImageOps.exif_transpose(img)
            arr = _to_rgb(img)
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        raise ImageReadError(f"{path}: not an image file (format not recognised)") from None
    except FileNotFoundError:
        raise ImageReadError(f"{path}: file not found") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageReadError(f"{path}: corrupt or truncated image ({exc})") from None
    if arr.ndim != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageReadError(f"{path}: image has no pixels")
    return np.ascontiguousarray(arr, dtype=np.uint8)


def damage(path: str | Path) -> str | None:
    """Why a file is damaged (truncated, corrupt), or None: the one verdict prep, predict and evaluate share.

    ``cv2.imread`` decodes a truncated JPEG into a partly grey image without
    failing; PIL refuses it. Evaluate scores such a file as the lecturer's
    ``cv2.imread`` does but lists it with this reason; prep and predict leave it out.
    """
    try:
        read_rgb(path)
    except ImageReadError as exc:
        return str(exc)
    return None


def list_files(folder: str | Path) -> list[Path]:
    """Every regular, non-hidden file of a folder (not recursive), sorted by name, so runs are reproducible."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a directory")
    return sorted((p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")), key=lambda p: p.name)


def square_resize(rgb: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """Centre-crop to a square and resize: the fallback framing when no face is aligned."""
    h, w = rgb.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = rgb[top : top + side, left : left + side]
    if crop.shape[0] == size:
        return np.ascontiguousarray(crop)
    return np.asarray(Image.fromarray(crop).resize((size, size), Image.BICUBIC))
