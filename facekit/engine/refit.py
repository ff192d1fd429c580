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

from facekit.engine.recipe import TrainConfig
from facekit.engine.resume import TrainResult, finished_run
from facekit.engine.train import train
from facekit.utils.atomic import write_json

FULL_SUFFIX = "-full"  # the refit's folder beside the split run's
Callbacks = Callable[[int], list[keras.callbacks.Callback]]  # epochs -> the callbacks of a run that long


def refit(cfg: TrainConfig, callbacks: Callbacks | None = None,
          resume: str | Path | None = None) -> tuple[TrainResult, TrainResult]:
    """Train on the split, then on everything for the split run's best epoch count; returns both runs.

    ``resume`` is the split run's folder (or the refit's, ``<name>-full``) of a refit an interruption
    stopped: the run that did not finish continues where it stopped, and a finished one is reused, so
    one command completes the pair however far it got. Its args.json wins over ``cfg``, as with train.
    """
    if cfg.full:
        raise ValueError("--refit trains on the split first to choose the epoch count; leave out --full")
    def run(run_cfg: TrainConfig, folder: Path | None = None) -> TrainResult:
        return train(run_cfg, callbacks(run_cfg.epochs) if callbacks else None, folder)

    full_dir = None
    if resume is None:
        chosen = run(cfg)
        base = cfg
    else:
        split_dir = Path(resume)
        if split_dir.name.endswith(FULL_SUFFIX) and (split_dir / "args.json").is_file() \
                and TrainConfig.load(split_dir / "args.json").full:
            split_dir = split_dir.with_name(split_dir.name.removesuffix(FULL_SUFFIX))
        if not (split_dir / "args.json").is_file():
            raise ValueError(f"{split_dir}: not a run folder (no args.json); --resume takes the split run's folder, "
                             "such as runs/finetune/exp")
        base = TrainConfig.load(split_dir / "args.json")
        if base.full:
            raise ValueError(f"{split_dir}: a --full run, not the split run of a refit")
        chosen = finished_run(split_dir) or run(base, split_dir)
        full_dir = split_dir.with_name(split_dir.name + FULL_SUFFIX)
    best = chosen.metrics.get("best_epoch")
    if not best:
        raise ValueError(f"{chosen.run_dir}: no best epoch was recorded, so there is no epoch count to refit for")
    full_cfg = dataclasses.replace(base, full=True, epochs=int(best),
                                   name=f"{chosen.run_dir.name}{FULL_SUFFIX}",
                                   val_images="crops")  # nothing is held out, whatever the split run read
    if full_dir is not None and (full_dir / "args.json").is_file():
        started = TrainConfig.load(full_dir / "args.json")
        if not started.full or started.epochs != int(best):
            raise ValueError(f"{full_dir}: not the refit of {chosen.run_dir} (it trains {started.epochs} epochs "
                             f"{'on every image' if started.full else 'on a split'}, the refit {best} on every image)")
        result = finished_run(full_dir) or run(full_cfg, full_dir)
    else:
        result = run(full_cfg)
    result.metrics["refit_of"] = {"run_dir": str(chosen.run_dir), "best_epoch": int(best),
                                  **{k: chosen.metrics.get(k) for k in ("val_age_mae", "val_gender_accuracy",
                                                                         "val_images")}}
    path = Path(result.run_dir) / "metrics.json"
    write_json(path, {**json.loads(path.read_text()), "refit_of": result.metrics["refit_of"]})
    result.notes.insert(0, f"refit on all {result.metrics['train_images']} images for {best} epochs, the best "
                           f"epoch of {chosen.run_dir}")
    return chosen, result
