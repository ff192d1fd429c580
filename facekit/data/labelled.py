"""A labelled folder read exactly as the lecturer's test reads it: ``cv2.imread`` (BGR), resized to
128 x 128 where needed, divided by 255, no alignment; labels from the file names through prep's
parser. ``facekit evaluate`` scores on it, and training can validate on it (``--val-images raw``)
so the epoch kept is the one that scores best on what is scored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facekit.choices import SPLITS
from facekit.contract import INPUT_SIZE, bgr_to_input, lecturer_image
from facekit.data.imageio import damage, list_files
from facekit.data.labels import Rejection, parse_name


@dataclass
class LabelledSet:
    x: np.ndarray  # (N, 128, 128, 3) float32, BGR / 255
    ages: np.ndarray
    genders: np.ndarray
    names: list[str]
    rejected: list[dict[str, str]] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    resized: list[str] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)  # decoded by cv2.imread, refused by prep (``damage``)


def load_labelled(folder: str | Path, size: int = INPUT_SIZE, progress: Callable[[int, int], None] | None = None,
                  split: str = "all", val_split: float = 0.2, seed: int = 0,
                  names: Sequence[str] | None = None) -> LabelledSet:
    """Read a labelled folder like the lecturer.

    ``names`` keeps exactly those files (a run's recorded split, which is the
    reliable way to score held-out images); without it, ``split`` re-splits
    the folder by the template and keeps its ``train`` or ``val`` part.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    files = list_files(folder)
    if names is not None:
        wanted = set(names)
        files = [p for p in files if p.name in wanted]
        missing = sorted(wanted - {p.name for p in files})
        if missing:
            raise ValueError(f"{folder}: {len(missing)} of the {len(wanted)} images the split lists are not in this "
                             f"folder (first: {missing[0]}); score the folder the run's cache was built from")
    elif split != "all":
        from facekit.data.split import template_split

        files = [p for p in files if not isinstance(parse_name(p.name), Rejection)]
        tr, va = template_split([p.name for p in files], val_split, seed)
        files = [files[i] for i in (va if split == "val" else tr)]
    images, ages, genders, names = [], [], [], []
    rejected, unreadable, resized, damaged = [], [], [], []
    for i, p in enumerate(files):
        if progress:
            progress(i + 1, len(files))
        lab = parse_name(p.name)
        if isinstance(lab, Rejection):
            rejected.append({"file": p.name, "reason": lab.reason, "detail": lab.detail})
            continue
        img, was_resized = lecturer_image(p, size)
        if img is None:
            unreadable.append(f"{p}: cv2.imread could not read it")
            continue
        problem = damage(p)
        if problem:
            damaged.append(problem)
        if was_resized:
            resized.append(p.name)
        images.append(img)
        ages.append(lab.age)
        genders.append(lab.gender)
        names.append(p.name)
    if not images:
        # Which files, and why: a folder of names the parser refused is fixed by renaming, not by guessing.
        shown = [f"{r['file']} ({r['detail']})" for r in rejected[:5]] + unreadable[:5]
        more = len(rejected) + len(unreadable) - len(shown)
        listed = (": " + "; ".join(shown) + (f"; and {more} more" if more > 0 else "")) if shown else ""
        raise ValueError(f"{folder}: no labelled image could be read ({len(rejected)} names rejected, "
                         f"{len(unreadable)} unreadable){listed}. Names must read AGE_GENDER_RACE_DATETIME.jpg "
                         "(UTKFace's)")
    x = bgr_to_input(np.stack(images))
    return LabelledSet(x, np.array(ages), np.array(genders), names, rejected, unreadable, resized, damaged)
