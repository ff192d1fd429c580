"""Loading trained models and running them: shared by predict, evaluate and benchmarks."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import keras
import numpy as np

from facekit.contract import FLIP_AVERAGE, HAND_IN_NAMES, KIND_TASKS
from facekit.model.files import model_file, open_model
from facekit.utils.modelfiles import sha256_file


@dataclass
class LoadedModel:
    path: Path
    label: str  # short name for tables: A, B, or the file stem
    model: keras.Model
    age_index: int
    gender_index: int
    note: str | None = None  # e.g. outputs in an unexpected order

    @cached_property
    def sha256(self) -> str:
        """The file's content hash: what predict's records and the LiteRT cache name it by."""
        return sha256_file(self.path)

    @property
    def flip_built_in(self) -> bool:
        """Trained with --tta: the graph already averages each image with its mirror."""
        return any(layer.name == FLIP_AVERAGE for layer in self.model.layers)


def newest_model(kind: str, project: str | Path = "runs") -> Path:
    """The most recently written age_gender_<kind>.keras under the runs folder."""
    name = HAND_IN_NAMES[KIND_TASKS[kind]]
    found = sorted(Path(project).glob(f"**/{name}"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise FileNotFoundError(f"no {name} under {project}/; train one with `facekit train {KIND_TASKS[kind]}` "
                                "or give the file's path")
    return found[-1]


def resolve_model(spec: str, project: str | Path = "runs") -> Path:
    """``A`` / ``B`` -> the newest trained file of that kind; anything else is a path."""
    if spec.upper() in ("A", "B"):
        return newest_model(spec.upper(), project)
    return model_file(spec)


def load(path: str | Path, label: str | None = None) -> LoadedModel:
    """Open a model file (``facekit.model.files``, the one loader) and keep which output is age and which gender."""
    file = open_model(path)
    path, roles, how = file.path, file.roles, file.how
    note = None
    if roles != ["age", "gender"]:
        note = f"{path.name}: outputs are in the order {roles} ({how}); scored by role, not position"
    elif how != "by output names":
        note = f"{path.name}: output names do not say which is age; assumed {roles} {how}"
    if label is None:
        stem = path.stem
        label = stem[-1] if stem.startswith("age_gender_") and len(stem) == len("age_gender_A") else stem
    return LoadedModel(path, label, file.model, roles.index("age"), roles.index("gender"), note)


def load_all(paths: list[Path]) -> list[LoadedModel]:
    """Load several files for side-by-side tables; two files with one short name (two runs' B)
    are told apart by their run folder, then by position, so neither column overwrites the other."""
    models = [load(p) for p in paths]

    def repeated() -> set[str]:
        return {label for label, n in Counter(m.label for m in models).items() if n > 1}

    clash = repeated()
    for m in models:
        if m.label in clash:
            m.label = f"{m.label} ({m.path.parent.name})"
    clash = repeated()
    for i, m in enumerate(models):
        if m.label in clash:
            m.label = f"{m.label} #{i + 1}"
    return models


def run(lm: LoadedModel, x: np.ndarray, tta: bool = False, batch_size: int = 64,
        engine: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Age in years and P(female) for a batch of model inputs (BGR, [0, 1]); ``tta`` averages with the mirror.

    ``engine`` answers in the model's place (``litert.LiteRTModel``); None runs the Keras model.
    """
    plain = _predict(lm, x, batch_size, engine)
    return flip_average(lm, x, plain, batch_size, engine) if tta else plain


def flip_average(lm: LoadedModel, x: np.ndarray, plain: tuple[np.ndarray, np.ndarray],
                 batch_size: int = 64, engine: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """``plain`` (the model's answers on ``x``) averaged with its answers on the mirror images.

    Takes the plain answers rather than recomputing them, so a caller that
    reports both pays for one extra pass, not two.
    """
    if lm.flip_built_in:  # a second mirror pass would give the same answer at twice the cost
        return plain
    age2, gender2 = _predict(lm, x[:, :, ::-1, :], batch_size, engine)
    return (plain[0] + age2) / 2, (plain[1] + gender2) / 2


def _predict(lm: LoadedModel, batch: np.ndarray, batch_size: int, engine: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """The model's answers through its compiled predict step, ``batch_size`` images per call.

    ``Model.predict`` builds a data pipeline on every call: about 75 ms of a
    91 ms face on a 2-core CPU when predict went image by image. A chunk is
    padded up to a power of two (at most ``batch_size``), so a folder's
    varying face counts compile a handful of shapes, not one per count (JAX
    traces every new shape). Inference-mode layers treat images independently,
    so padding never changes an answer.
    """
    ages, genders = [], []
    for start in range(0, len(batch), batch_size):
        chunk = batch[start : start + batch_size]
        n = len(chunk)
        size = min(batch_size, 1 << (n - 1).bit_length())
        if size > n:
            chunk = np.concatenate([chunk, np.zeros((size - n, *chunk.shape[1:]), chunk.dtype)])
        out = (engine or lm.model).predict_on_batch(chunk)
        ages.append(np.asarray(out[lm.age_index], np.float64).reshape(-1)[:n])
        genders.append(np.asarray(out[lm.gender_index], np.float64).reshape(-1)[:n])
    if not ages:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(ages), np.concatenate(genders)
