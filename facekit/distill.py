"""Knowledge distillation: a trained model's predictions as soft targets for another (B into A).

The student still starts from random weights; only its targets change. The
teacher's outputs are computed once, on the un-augmented training crops, and
blended with the true labels in the loader (``FaceBatches(soft=...)``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from facekit.contract import rgb_to_input
from facekit.dataset import age_distributions
from facekit.split import RunSplit, read_run_split


@dataclass
class SoftTargets:
    age_dist: np.ndarray  # (N, 117) the teacher's age distribution
    p_female: np.ndarray  # (N,)
    source: str  # "age_dist layer" or "Gaussian around the teacher's age"


def check_teacher_split(teacher: Path, student: RunSplit) -> None:
    """A teacher that trained on the student's validation images would leak their labels into its score.

    The teacher's recorded training names are compared with the student's
    validation names; a teacher from before runs recorded them falls back to
    comparing the split settings.
    """
    if student.full or not student.val:
        return
    recorded = read_run_split(teacher.parent)
    if recorded is not None:
        leaked = set(recorded.train) & set(student.val)
        if leaked:
            raise ValueError(f"{teacher}: the teacher trained on {len(leaked)} of this run's {len(student.val)} "
                             f"validation images (e.g. {sorted(leaked)[0]}), so its targets would leak their "
                             "labels; use a teacher trained on the same split, or distil with --full")
        return
    args_path = teacher.parent / "args.json"
    if not args_path.exists():
        return
    args = json.loads(args_path.read_text())
    if args.get("full") or args.get("seed", 0) != student.seed or args.get("val_split", 0.2) != student.val_split:
        raise ValueError(f"{teacher}: the teacher was trained on a different split (full={args.get('full')}, "
                         f"seed={args.get('seed')}, val split={args.get('val_split')}), so it has seen this run's "
                         "validation images; use a teacher from the same split, or distil with --full")


def teacher_targets(teacher: str | Path, images_rgb: np.ndarray, sigma: float = 2.0,
                    batch_size: int = 256) -> SoftTargets:
    """The teacher's age distribution and P(female) for cached RGB uint8 crops.

    A facekit model exposes its age distribution (the ``age_dist`` layer); any
    other age-and-gender file gets a Gaussian of width ``sigma`` around its
    predicted age.
    """
    from facekit.inference import load

    lm = load(teacher, label="teacher")
    names = {layer.name for layer in lm.model.layers}
    outputs = [lm.model.outputs[lm.gender_index], lm.model.outputs[lm.age_index]]
    source = "Gaussian around the teacher's age"
    if "age_dist" in names:
        outputs[1] = lm.model.get_layer("age_dist").output
        source = "age_dist layer"
    probe = keras.Model(lm.model.inputs, outputs)
    genders, ages = [], []
    for start in range(0, len(images_rgb), batch_size):
        g, a = probe.predict(rgb_to_input(images_rgb[start:start + batch_size]), verbose=0)
        genders.append(np.asarray(g, np.float32).reshape(-1))
        ages.append(np.asarray(a, np.float32))
    p_female, age = np.concatenate(genders), np.concatenate(ages)
    if age.ndim == 1 or age.shape[-1] == 1:
        age = age_distributions(age.reshape(-1), sigma)
    age = age / age.sum(axis=1, keepdims=True)
    return SoftTargets(age.astype(np.float32), p_female, source)
