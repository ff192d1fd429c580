"""facekit's folder in the user's cache, worked out in one place: model files, Keras environments and LiteRT
conversions all live under it."""

from __future__ import annotations

import os
from pathlib import Path


def user_cache(*parts: str) -> Path:
    """``$XDG_CACHE_HOME/facekit/...``, or ``~/.cache/facekit/...`` where that is unset (as on Colab)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base, "facekit", *parts)
