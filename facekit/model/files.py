"""The one way facekit opens a model file, whoever wrote it.

predict, evaluate, merge and ``train --teacher`` open files here, and check
names files with the same rules (``model_file``), so a run folder given for a
file, a renamed zip, a file Keras cannot load or a plain Keras model with
other outputs gets one message naming the file and the reason, in every
command, instead of a different traceback in each.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import keras

from facekit.contract import AGE_DISTRIBUTION, DEFAULT_OUTPUT_ORDER, HAND_IN_NAMES, output_roles
from facekit.contract.probe import layer_activation, output_names, producer
from facekit.model.compat import read_config
from facekit.model.ensemble import age_dist_layers, merge, output_members


class BadModelFile(ValueError):
    """A model file that cannot be used, with the file and the reason in its message."""


@dataclass
class ModelFile:
    path: Path
    model: keras.Model
    roles: list[str]  # the outputs' roles in the file's order: ["age", "gender"] or ["gender", "age"]
    how: str  # how the roles were told apart: by output names, or by activation
    facekit_export: bool  # has facekit's age distribution (one, or one per merged member)


def root_cause(error: str | None, limit: int = 400) -> str:
    """The innermost message of a Keras load error (they nest the whole config at every level)."""
    text = (error or "unknown error").strip()
    head = text.split(":", 1)[0] if ":" in text[:60] else ""
    last = text.rsplit("Exception encountered:", 1)[-1].strip()
    last = " ".join(last.split())
    if head and not last.startswith(head):
        last = f"{head}: {last}"
    return last if len(last) <= limit else last[: limit - 3] + "..."


def model_file(path: str | Path) -> Path:
    """``path`` if it is a file; a folder (a run folder, most often) or a missing path is refused by name."""
    path = Path(path)
    if path.is_dir():
        inside = [path / name for name in HAND_IN_NAMES.values() if (path / name).is_file()]
        hint = f"; the hand-in file in it is {inside[0]}" if inside else ""
        raise BadModelFile(f"{path}: a folder, not a model file{hint}")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    return path


def open_model(path: str | Path) -> ModelFile:
    """Load ``path`` (uncompiled: facekit only predicts with it) and tell its age output from its gender output."""
    path = model_file(path)
    read_config(path)  # a zero-byte or renamed file: "not a Keras 3 .keras file", not Keras's "File not found"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # optimizer-state notes from load_model are not the user's concern
            model = keras.models.load_model(path, compile=False)
    except Exception as exc:  # Keras raises TypeError, ValueError, KeyError... for files it cannot rebuild
        raise BadModelFile(f"{path}: Keras {keras.__version__} could not load it: "
                             f"{root_cause(f'{type(exc).__name__}: {exc}')}") from exc
    outs = [{"name": n, "layer": layer_activation(producer(t))} for n, t in zip(output_names(model), model.outputs)]
    roles, how = output_roles(outs)
    if roles is None:
        raise BadModelFile(f"{path}: not an age and gender model: {how}")
    return ModelFile(path, model, roles, how, bool(age_dist_layers(model)))


def require_export(file: ModelFile, why: str) -> ModelFile:
    """Refuse a file that is not a facekit export where ``why`` needs one (merge, distillation)."""
    if not file.facekit_export:
        raise BadModelFile(f"{file.path}: not a facekit export (it has no {AGE_DISTRIBUTION} layer, the age "
                             f"distribution {why} needs); train it with `facekit train` or leave it out")
    return file


def merge_files(paths: list[str | Path], output_order: str = DEFAULT_OUTPUT_ORDER,
                age_from: Sequence[int] | None = None, gender_from: Sequence[int] | None = None) -> keras.Model:
    """``merge`` of saved files (hand-in files of several training runs), each opened and checked here."""
    paths = [model_file(p) for p in paths]  # every path first: a folder is refused before minutes of loading
    output_members(len(paths), age_from, gender_from)  # so is a member number out of range
    return merge([require_export(open_model(p), "merging averages").model for p in paths], output_order,
                 age_from=age_from, gender_from=gender_from)
