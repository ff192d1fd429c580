"""Refit: choose the epoch count on the split, then train on every image for that many epochs.

The split run holds out a fifth of the images to pick its best epoch; the
hand-in file is then trained again from scratch on all of them (``--full``)
for exactly that many epochs, with the same options and seed, so the held-out
fifth also teaches the model. The two runs are ordinary run folders side by
side (``runs/<task>/<name>`` and ``runs/<task>/<name>-full``); the refit's
``metrics.json`` names the run that chose its length and that run's
validation figures (``refit_of``). The refit itself has nothing held out, so
only a holdout that neither run saw can say what the extra images are worth
(``python -m benchmarks.refit``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import keras

from facekit.atomic import write_json
from facekit.recipe import TrainConfig
from facekit.train import TrainResult, train

Callbacks = Callable[[int], list[keras.callbacks.Callback]]  # epochs -> the callbacks of a run that long


def refit(cfg: TrainConfig, callbacks: Callbacks | None = None) -> tuple[TrainResult, TrainResult]:
    """Train on the split, then on everything for the split run's best epoch count; returns both runs."""
    if cfg.full:
        raise ValueError("--refit trains on the split first to choose the epoch count; leave out --full")
    chosen = train(cfg, callbacks(cfg.epochs) if callbacks else None)
    best = chosen.metrics.get("best_epoch")
    if not best:
        raise ValueError(f"{chosen.run_dir}: no best epoch was recorded, so there is no epoch count to refit for")
    full_cfg = dataclasses.replace(cfg, full=True, epochs=int(best), name=f"{chosen.run_dir.name}-full",
                                   val_images="crops")  # nothing is held out, whatever the split run read
    result = train(full_cfg, callbacks(full_cfg.epochs) if callbacks else None)
    result.metrics["refit_of"] = {"run_dir": str(chosen.run_dir), "best_epoch": int(best),
                                  **{k: chosen.metrics.get(k) for k in ("val_age_mae", "val_gender_accuracy",
                                                                         "val_images")}}
    path = Path(result.run_dir) / "metrics.json"
    write_json(path, {**json.loads(path.read_text()), "refit_of": result.metrics["refit_of"]})
    result.notes.insert(0, f"refit on all {result.metrics['train_images']} images for {best} epochs, the best "
                           f"epoch of {chosen.run_dir}")
    return chosen, result
