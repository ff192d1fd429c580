"""The train/validation split of the course template, made reproducible.

The template lists files with ``os.listdir``, calls ``random.seed(0)`` and
``random.shuffle`` and keeps the first 80 % for training. ``os.listdir``
order depends on the file system, so facekit sorts the names first: same
procedure, same result on every machine.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np


def template_split(names: Sequence[str], val_split: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices into ``names`` for training and validation."""
    if not 0.0 <= val_split < 1.0:
        raise ValueError(f"val_split must be in [0, 1), got {val_split}")
    order = sorted(range(len(names)), key=lambda i: names[i])
    shuffled = [names[i] for i in order]
    random.Random(seed).shuffle(shuffled)  # identical to random.seed(seed); random.shuffle(shuffled)
    n_train = int(len(shuffled) * (1.0 - val_split))
    index = {name: i for i, name in enumerate(names)}
    train = np.array(sorted(index[n] for n in shuffled[:n_train]), dtype=np.int64)
    val = np.array(sorted(index[n] for n in shuffled[n_train:]), dtype=np.int64)
    return train, val
