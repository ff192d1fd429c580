"""A run's several model files merged into its one hand-in file, and the merge scored as it will be read.

What ``--snapshots`` (the cycles of one run) and ``--members`` (several runs)
share: ``facekit merge``'s code makes the file (``facekit.model.files``), and
the validation figures are the saved file's, loaded back from disk, on the
held-out images the members were chosen on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from facekit.contract import hand_in_scores, rgb_to_input
from facekit.engine.selection import hand_in_score
from facekit.inference.load import load, run
from facekit.model.export import save_hand_in
from facekit.model.files import merge_files

# RGB uint8 crops (as the cache and the loader hold them), ages, genders
HeldOut = tuple[np.ndarray, np.ndarray, np.ndarray]


def merge_into(files: list[Path], dest: Path, output_order: str, val: HeldOut | None) -> dict[str, Any]:
    """Write the merge of ``files`` to ``dest`` (atomically, as every hand-in file) and return its validation
    figures on ``val`` (none where nothing is held out)."""
    save_hand_in(merge_files(files, output_order), dest)
    if val is None or not len(val[1]):
        return {}
    images, ages, genders = val
    age, p_female = run(load(dest), rgb_to_input(np.asarray(images)))  # a streamed cache's rows, read in order
    mae, accuracy = hand_in_scores(ages, age, genders, p_female)
    return {"val_age_mae": mae, "val_gender_accuracy": accuracy, "val_score": hand_in_score(mae, accuracy)}
