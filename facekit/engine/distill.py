"""Knowledge distillation: trained models' predictions as soft targets for another (B into A).

The student still starts from random weights; only its targets change. The
teachers' outputs are computed once, on the un-augmented training crops, and
blended with the true labels in the loader (``FaceBatches(soft=...)``).
Several teachers (an ensemble of B runs) are averaged the way ``facekit
merge`` averages them, so distilling from k run files or from their merged
file gives the same targets; the run files also let each teacher's split be
checked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from facekit.contract import rgb_to_input
from facekit.data.dataset import age_distributions
from facekit.data.split import RunSplit, read_run_split
from facekit.model.ensemble import age_dist_layers, mean_gender


@dataclass
class SoftTargets:
    age_dist: np.ndarray  # (N, 117) the teacher's age distribution
    p_female: np.ndarray  # (N,)
    source: str  # "age_dist layer", "the mean of N members' age_dist layers" or "Gaussian around the teacher's age"


def check_teacher_split(teacher: Path, student: RunSplit) -> str | None:
    """A teacher that trained on the student's validation images would leak their labels into its score.

    The teacher's recorded training names are compared with the student's
    validation names; a teacher from before runs recorded them falls back to
    comparing the split settings. A teacher with neither beside it (a merged
    file, a file from elsewhere) cannot be checked: the returned note says so,
    since a leak would flatter the student's validation score unnoticed.
    """
    if student.full or not student.val:
        return None
    recorded = read_run_split(teacher.parent)
    if recorded is not None:
        leaked = set(recorded.train) & set(student.val)
        if leaked:
            raise ValueError(f"{teacher}: the teacher trained on {len(leaked)} of this run's {len(student.val)} "
                             f"validation images (e.g. {sorted(leaked)[0]}), so its targets would leak their "
                             "labels; use a teacher trained on the same split, or distil with --full")
        return None
    args_path = teacher.parent / "args.json"
    if not args_path.exists():
        return (f"{teacher}: no split.json or args.json beside it, so facekit cannot check that it never trained on "
                "this run's validation images (pass the run files of a merged ensemble to check each one)")
    args = json.loads(args_path.read_text())
    if args.get("full") or args.get("seed", 0) != student.seed or args.get("val_split", 0.2) != student.val_split:
        raise ValueError(f"{teacher}: the teacher was trained on a different split (full={args.get('full')}, "
                         f"seed={args.get('seed')}, val split={args.get('val_split')}), so it has seen this run's "
                         "validation images; use a teacher from the same split, or distil with --full")
    return None


def teacher_targets(teacher: str | Path, images_rgb: np.ndarray, sigma: float = 2.0,
                    batch_size: int = 256) -> SoftTargets:
    """The teacher's age distribution and P(female) for cached RGB uint8 crops.

    A facekit model exposes its age distribution (the ``age_dist`` layer; a
    merged file, one per member, averaged); any other age-and-gender file
    gets a Gaussian of width ``sigma`` around its predicted age.
    """
    from facekit.inference.load import load

    lm = load(teacher, label="teacher")
    dists = age_dist_layers(lm.model)
    outputs = [lm.model.outputs[lm.gender_index], *(d.output for d in dists)]
    if not dists:
        outputs.append(lm.model.outputs[lm.age_index])
    source = {0: "Gaussian around the teacher's age", 1: "age_dist layer"}.get(
        len(dists), f"the mean of {len(dists)} members' age_dist layers")
    probe = keras.Model(lm.model.inputs, outputs)
    genders, ages = [], []
    for start in range(0, len(images_rgb), batch_size):
        g, *a = probe.predict(rgb_to_input(images_rgb[start:start + batch_size]), verbose=0)
        genders.append(np.asarray(g, np.float32).reshape(-1))
        ages.append(np.mean([np.asarray(x, np.float32) for x in a], axis=0))
    p_female, age = np.concatenate(genders), np.concatenate(ages)
    if not dists:
        age = age_distributions(age.reshape(-1), sigma)
    age = age / age.sum(axis=1, keepdims=True)
    return SoftTargets(age.astype(np.float32), p_female, source)


def mean_targets(targets: list[SoftTargets]) -> SoftTargets:
    """Several teachers as one, averaged as ``facekit merge`` averages its members.

    Age: the mean of the distributions (so the expected age is the mean of
    the teachers' ages); gender: the sigmoid of the mean logit, as the merged
    file's single gender unit computes it.
    """
    if len(targets) == 1:
        return targets[0]
    age = np.mean([t.age_dist for t in targets], axis=0)
    sources = sorted({t.source for t in targets})
    return SoftTargets((age / age.sum(axis=1, keepdims=True)).astype(np.float32),
                       mean_gender(np.stack([t.p_female for t in targets])).astype(np.float32),
                       f"the mean of {len(targets)} teachers ({', '.join(sources)})")
