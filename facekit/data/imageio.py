"""Robust image reading: whatever a user's folder holds becomes RGB uint8, or a clear error."""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from facekit.contract import INPUT_SIZE

# What counts as an image file, for every command: prep, predict and evaluate read exactly these (any
# case), so a folder means the same files to each.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")

Image.MAX_IMAGE_PIXELS = 100_000_000  # a face photo never needs more; guards against decompression bombs
# Past the limit PIL only warns, up to twice it; read_rgb refuses any image past it and says how large, so
# PIL's own line (which names no file) is not printed as well.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
# An EXIF block PIL cannot parse ("Corrupt EXIF data", "Tag data larger than file ..."): the orientation is
# unknown and the image is used as stored, which is all facekit can do; PIL's bare line on stderr names no
# file and asks nothing of the user.
warnings.filterwarnings("ignore", category=UserWarning, module="PIL.TiffImagePlugin")
_BOMB = re.compile(r"\((\d+) pixels\)")


class ImageReadError(Exception):
    """An image file that cannot be used, with the file and the reason in its message; ``kind`` says which
    reason for programs (``facekit serve`` answers a too-large upload with 413, any other with 415)."""

    def __init__(self, message: str, kind: str = "unreadable") -> None:
        super().__init__(message)
        self.kind = kind  # "empty", "missing", "denied", "too_large", "not_image", "damaged" or "unreadable"


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
            raise ImageReadError(f"{path}: empty file", "empty")
        with Image.open(path) as img:
            if img.width * img.height > (Image.MAX_IMAGE_PIXELS or math.inf):
                raise Image.DecompressionBombError(f"Image size ({img.width * img.height} pixels) exceeds limit")
            img.load()
            img = ImageOps.exif_transpose(img)
            arr = _to_rgb(img)
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        raise ImageReadError(f"{path}: not an image file (format not recognised)", "not_image") from None
    except FileNotFoundError:
        raise ImageReadError(f"{path}: file not found", "missing") from None
    except PermissionError:
        raise ImageReadError(f"{path}: permission denied (this user may not read the file)", "denied") from None
    except IsADirectoryError:
        raise ImageReadError(f"{path}: a folder, not an image file", "not_image") from None
    except Image.DecompressionBombError as exc:
        found = _BOMB.search(str(exc))
        size = f"{int(found[1]) / 1e6:.0f} megapixels" if found else "over the limit"
        raise ImageReadError(f"{path}: too large ({size}, limit {Image.MAX_IMAGE_PIXELS / 1e6:.0f}); a face "
                             "photo needs far fewer: scale it down", "too_large") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageReadError(f"{path}: corrupt or truncated image ({exc})", "damaged") from None
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
