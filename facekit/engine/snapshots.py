"""Snapshot ensembles: several models for the price of one training (Huang et al., 2017).

``--snapshots K`` splits a run's epochs (after any frozen warm-up) into K
cosine cycles. Each cycle starts a fresh schedule, warm-up included, from
where the last one ended, and its last epoch is kept as a file of its own
(``snapshot-1.keras`` ...). When the last cycle ends, the hand-in file becomes
their merge (``facekit.engine.merging``, as ``--members`` merges runs), and
the run's validation figures are the merged file's, read back from disk as
it will be scored. Early stopping is off in such a run: each restart raises
the loss on purpose.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import keras

from facekit.engine.callbacks import diverged
from facekit.engine.merging import HeldOut, merge_into
from facekit.engine.selection import SCORE, monitored
from facekit.model.export import float32_copy, save_hand_in

PATTERN = "snapshot-{}.keras"


def cycle_ends(first: int, epochs: int, cycles: int) -> list[int]:
    """The epoch (1-based, counted from the run's start) that ends each cycle of the epochs after ``first``."""
    span = epochs - first
    return [first + round((i + 1) * span / cycles) for i in range(cycles)]


def snapshot_file(run_dir: Path, cycle: int) -> Path:
    """Cycle ``cycle``'s (0-based) kept model, named from 1 as a user counts them."""
    return run_dir / PATTERN.format(cycle + 1)


def save_snapshot(export: keras.Model, dest: Path) -> None:
    """A hand-in style file (float32, readable by older Keras), so the merge takes it as it takes any run's."""
    save_hand_in(float32_copy(export), dest)


class SaveSnapshots(keras.callbacks.Callback):
    """Keep the export of each cycle's last epoch. Placed after the EMA swap, so an EMA run keeps its averages."""

    def __init__(self, export: keras.Model, run_dir: Path, ends: list[int]) -> None:
        super().__init__()
        self.export, self.run_dir, self.ends = export, run_dir, ends

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if epoch + 1 in self.ends and not diverged(logs):
            save_snapshot(self.export, snapshot_file(self.run_dir, self.ends.index(epoch + 1)))


def missing_before(run_dir: Path, ends: list[int], epochs_done: int) -> list[tuple[int, Path]]:
    """(cycle end, file) of every cycle that finished by ``epochs_done`` but whose snapshot is not on disk."""
    return [(end, snapshot_file(run_dir, i)) for i, end in enumerate(ends)
            if end <= epochs_done and not snapshot_file(run_dir, i).is_file()]


def merge_snapshots(run_dir: Path, ends: list[int], dest: Path, output_order: str,
                    val: HeldOut | None) -> dict[str, Any]:
    """Merge the cycles' files into ``dest`` and score the merged file on ``val`` (None with --full).
    Returns what ``metrics.json`` records of it."""
    files = [snapshot_file(run_dir, i) for i in range(len(ends))]
    lost = [str(f) for f in files if not f.is_file()]
    if lost:
        raise ValueError(f"{run_dir}: the snapshot file(s) {', '.join(lost)} are missing, so the snapshot ensemble "
                         "cannot be merged; the hand-in file is the best single epoch's")
    return {"files": [f.name for f in files], "epochs": ends, **merge_into(files, dest, output_order, val)}


def merge_worse_than_single(record: dict[str, Any], run_dir: Path) -> str | None:
    """A note when the merged cycles validate worse than the run's best single epoch (``val_score``, lower is
    better): an undertrained early cycle drags the average down, and the user should know the hand-in file is
    not the best this run made. None when it is, or when either figure is missing (nothing held out).

    Model A's epochs are chosen on age MAE, so its history logs no ``val_score``: the single epoch's is then
    recomputed from its two figures, as the merge's was computed from the merged file's."""
    single, whole = (monitored({k: v for k, v in figures.items() if v is not None}, SCORE)
                     for figures in (record["best_single"], record))
    if not (math.isfinite(single) and math.isfinite(whole)) or whole <= single:
        return None
    return (f"the {len(record['files'])} snapshots merged validate worse than epoch "
            f"{record['best_single']['best_epoch']} alone (val_score {whole:.2f} against {single:.2f}): an early "
            f"cycle may be undertrained; `facekit merge` of the later snapshot-N.keras files in {run_dir} may do "
            "better")
