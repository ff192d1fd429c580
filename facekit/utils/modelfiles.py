"""Model files facekit needs at run time (MediaPipe tasks, ImageNet weights).

On a user's machine they download on first use from their official addresses
into facekit's model directory and are checked by sha256. ``FACEKIT_MODEL_DIR``
(or a ``--model-dir`` option) names a directory with local copies instead,
laid out as ``mediapipe/<file>`` and ``keras/<file>``; offline machines and the
tests use that.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from facekit.utils.atomic import atomic_path
from facekit.utils.cachedir import user_cache

ENV_VAR = "FACEKIT_MODEL_DIR"


class ModelFileError(Exception):
    """A model file that is missing, cannot be downloaded, or fails its checksum."""


@dataclass(frozen=True)
class ModelFile:
    relpath: str
    url: str
    sha256: str | None  # None where no hash is pinned (Keras checks its own downloads)


MEDIAPIPE_BASE = "https://storage.googleapis.com/mediapipe-models"
FACE_DETECTOR = ModelFile(
    "mediapipe/blaze_face_short_range.tflite",
    f"{MEDIAPIPE_BASE}/face_detector/blaze_face_short_range/float16/1/blaze_face_short_range.tflite",
    "b4578f35940bf5a1a655214a1cce5cab13eba73c1297cd78e1a04c2380b0152f",
)
FACE_LANDMARKER = ModelFile(
    "mediapipe/face_landmarker.task",
    f"{MEDIAPIPE_BASE}/face_landmarker/face_landmarker/float16/1/face_landmarker.task",
    "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff",
)


def default_model_dir() -> Path:
    return user_cache("models")


def model_dir(override: str | Path | None = None) -> Path:
    """The directory facekit reads model files from: the option, then the environment, then the cache."""
    if override:
        return Path(override)
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else default_model_dir()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _verify(path: Path, spec: ModelFile) -> None:
    if spec.sha256 is None:
        return
    got = sha256_file(path)
    if got != spec.sha256:
        raise ModelFileError(
            f"{path}: sha256 {got} does not match the expected {spec.sha256}. "
            f"Delete it to download again from {spec.url}, or put a good copy in a directory "
            f"and name it with {ENV_VAR} or --model-dir."
        )


def _download(spec: ModelFile, dest: Path) -> None:
    try:
        with atomic_path(dest) as tmp:
            with urllib.request.urlopen(spec.url, timeout=60) as resp, open(tmp, "wb") as out:
                while block := resp.read(1 << 20):
                    out.write(block)
            _verify(tmp, spec)
    except ModelFileError:
        raise
    except OSError as exc:
        raise ModelFileError(
            f"could not download {spec.url} to {dest} ({exc}). Without network, copy the file to "
            f"DIR/{spec.relpath} and set {ENV_VAR}=DIR (or pass --model-dir DIR)."
        ) from None


def ensure_model_file(spec: ModelFile, directory: str | Path | None = None) -> Path:
    """Return a verified local path for ``spec``, downloading it when facekit owns the directory.

    A directory the user named (option or environment) is never written to: a
    missing file there is an error that says where it was looked for.
    """
    user_named = bool(directory) or bool(os.environ.get(ENV_VAR))
    root = model_dir(directory)
    path = root / spec.relpath
    if path.is_file():
        _verify(path, spec)
        return path
    if user_named:
        raise ModelFileError(f"{path} not found (model directory {root} was named by option or {ENV_VAR})")
    _download(spec, path)
    return path
