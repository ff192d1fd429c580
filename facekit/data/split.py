"""The train/validation split of the course template, made reproducible.

The template lists files with ``os.listdir``, calls ``random.seed(0)`` and
``random.shuffle`` and keeps the first 80 % for training. ``os.listdir``
order depends on the file system, so facekit sorts the names first: same
procedure, same result on every machine.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

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


SPLIT_FILE = "split.json"


@dataclass
class RunSplit:
    """The exact file names a run trained and validated on, as recorded in its folder.

    Re-splitting a folder by the template only reproduces a run's split when the
    cache holds every file of the folder; a cache missing some (unreadable,
    ``--drop-unaligned``, ``--limit``) shifts the shuffle, and "held-out" images
    become training images. The recorded lists never drift.
    """

    train: list[str]
    val: list[str]
    cache: str = ""
    seed: int = 0
    val_split: float = 0.2
    full: bool = False
    val_twins_in_train: int = 0  # validation images with a pixel-identical copy among the training images
    source: str = ""  # where it was read from (not written)

    def part(self, name: str) -> list[str]:
        if name not in ("train", "val"):
            raise ValueError(f"split part must be train or val, got {name!r}")
        return self.val if name == "val" else self.train


def count_twins(train_digests: Sequence[str], val_digests: Sequence[str]) -> int:
    """Validation images whose pixels also occur in training (UTKFace has such duplicate files)."""
    seen = set(train_digests)
    return sum(d in seen for d in val_digests if d)


def write_run_split(run_dir: Path, split: RunSplit) -> None:
    from facekit.utils.atomic import write_json

    data = asdict(split)
    data.pop("source")
    write_json(Path(run_dir) / SPLIT_FILE, data)


def read_run_split(run_dir: str | Path) -> RunSplit | None:
    """The split recorded in a run folder, or None for a folder without one (runs from before it existed)."""
    path = Path(run_dir) / SPLIT_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        known = {f.name for f in fields(RunSplit)} - {"source"}
        split = RunSplit(**{k: v for k, v in data.items() if k in known}, source=str(path))
        if not all(isinstance(n, str) for n in [*split.train, *split.val]):
            raise TypeError("names must be strings")
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: not a facekit split file ({exc})") from None
    return split
