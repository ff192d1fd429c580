"""Continuing a stopped run from its folder: what was done, what is left, and what cannot be continued.

``facekit train --resume`` reads the run's own arguments, split, checkpoint,
state and history, refuses what would make a different run under the same
arguments (another split, a run already finished or past its patience), puts
back a history row a kill lost, and hands the training loop the epoch, best
figure and time to go on from. Kept apart from the loop in ``train`` so each
reads on its own.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import keras

from facekit.data.split import SPLIT_FILE, RunSplit, read_run_split, write_run_split
from facekit.engine.callbacks import averaged_weights
from facekit.engine.optimizer import DiscriminativeAdamW
from facekit.engine.recipe import TrainConfig, flag
from facekit.engine.runs import LAST, STATE, align_history, mark_stopped_early, read_history, resume_point
from facekit.engine.selection import choose_epoch
from facekit.model.export import save_hand_in
from facekit.model.models import AgeGenderModels, export_from_train, find_backbone


@dataclass
class TrainResult:
    run_dir: Path
    model_path: Path
    metrics: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def finished_run(run_dir: str | Path) -> TrainResult | None:
    """The result a run folder holds if its training ended (all epochs, or stopped early), else None.

    Lets a resumed multi-run job (a refit, a benchmark series) skip what an earlier session completed
    instead of refusing it as "already trained".
    """
    path = Path(run_dir) / "metrics.json"
    if not path.is_file():
        return None
    try:
        metrics = json.loads(path.read_text())
    except ValueError:
        return None
    if metrics.get("interrupted") or not metrics.get("model") or not Path(metrics["model"]).is_file():
        return None
    return TrainResult(Path(run_dir), Path(metrics["model"]), metrics)


# How a session runs, not what it trains: these may differ from args.json when a run is resumed.
SESSION_OPTIONS = ("workers", "check_keras", "model_dir", "cache_mode", "eager")


def session_options(run_dir: Path, cfg: TrainConfig, given: dict[str, Any], notes: list[str]) -> TrainConfig:
    """``cfg`` (the run's args.json) with the options given for this session applied where that is safe.

    A resumed run must go on as it started: an option that changes what is trained (the learning rate, the
    epochs, the augmentation ...) and differs from args.json is refused, naming each; one that changes only
    how this session runs (workers, the check's Keras versions ...) is applied, and said.
    """
    differ = {k: v for k, v in given.items() if v is not None and getattr(cfg, k) != v}
    refused = [k for k in differ if k not in SESSION_OPTIONS]
    if refused:
        said = "; ".join(f"{flag(k)} {_shown(differ[k])} (the run has {_shown(getattr(cfg, k))})" for k in refused)
        raise ValueError(f"{run_dir}: --resume continues the run with the options in its args.json, and these "
                         f"differ: {said}. Leave them out to continue it, or start a new run with them")
    if differ:
        notes.append(f"{run_dir}: this session runs with " + ", ".join(f"{flag(k)} {_shown(v)}"
                                                                        for k, v in differ.items())
                     + " (how it runs, not what it trains; args.json keeps the run's own)")
        cfg = replace(cfg, **differ)
    return cfg


def _shown(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)


def open_run(run_dir: Path, notes: list[str], given: dict[str, Any] | None = None
             ) -> tuple[Path, TrainConfig, Path | None]:
    """The run folder and its arguments; the folder comes back a third time when no epoch had finished, for
    the run to start afresh in it (there is nothing to continue). ``given``: this session's options
    (``session_options``)."""
    if not (run_dir / "args.json").is_file():
        raise ValueError(f"{run_dir}: not a run folder (no args.json); --resume takes a folder such as "
                         "runs/scratch/exp")
    try:
        cfg = TrainConfig.load(run_dir / "args.json")
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{run_dir / 'args.json'}: not a readable record of the run's options ({exc}); the run "
                         "cannot be continued without it: restore it, or start a new run") from None
    cfg = session_options(run_dir, cfg, given or {}, notes)
    if (run_dir / LAST).is_file():
        return run_dir, cfg, None
    done = len(read_history(run_dir / "history.csv"))
    if done or (run_dir / STATE).is_file():
        raise ValueError(f"{run_dir / LAST}: missing, though {done or 'some'} epoch(s) finished (history.csv, "
                         f"{STATE}); it is the checkpoint --resume continues from: restore it, or start a new run "
                         f"(the hand-in file {cfg.export_name}, if there, is still the best epoch's)")
    notes.append(f"{run_dir}: no epoch had finished, so the run starts afresh there")
    for stale in ("history.csv", "metrics.json", STATE, cfg.export_name):
        (run_dir / stale).unlink(missing_ok=True)
    return run_dir, cfg, run_dir


def load_checkpoint(run_dir: Path) -> keras.Model:
    """The training model and optimizer of ``last.keras``; the one place that reads it, so every optimizer a
    run may have trained with (``facekit.engine.optimizer``) is known to the load."""
    return keras.models.load_model(run_dir / LAST, custom_objects={
        keras.saving.get_registered_name(DiscriminativeAdamW): DiscriminativeAdamW})


@dataclass
class Resumed:
    """Where a resumed run goes on from."""

    models: AgeGenderModels  # loaded from last.keras
    initial_epoch: int
    best: float  # the monitored figure of its best epoch so far (inf: none, or a --full run)
    best_epoch: int | None
    earlier_seconds: float  # training time of the earlier sessions
    finish_only: bool  # training had ended; the session that ended it was killed before its metrics


def continue_run(run_dir: Path, cfg: TrainConfig, split: RunSplit, monitor: str | None,
                 notes: list[str]) -> Resumed:
    """Check that ``run_dir`` can go on with ``split`` and load its checkpoint; refusals raise ValueError
    before the slow load."""
    best, best_epoch, finish_only = math.inf, None, False
    recorded = read_run_split(run_dir)
    if recorded is not None and (recorded.train != split.train or recorded.val != split.val):
        raise ValueError(f"{run_dir}: {cfg.cache} no longer splits into the images this run started with "
                         "(the cache was rebuilt from other files?); resuming would validate on other images. "
                         "Start a new run instead")
    if recorded is None:  # a run from before split.json: record the split its args give, from now on
        write_run_split(run_dir, split)
        notes.append(f"{run_dir}: no {SPLIT_FILE} (a run older than it); recorded the split of {cfg.cache} "
                     f"with seed {cfg.seed}")
    point = resume_point(run_dir)
    initial_epoch = point.epochs_done
    ended: str | None = None  # why the run has nothing left to train
    if point.stopped_early:
        ended = (f"it stopped early after {initial_epoch} epochs (no {monitor} improvement in "
                 f"{cfg.patience}), so there is nothing to resume")
    elif initial_epoch >= cfg.epochs:
        ended = f"epoch {cfg.epochs} of {cfg.epochs} is done"
    earlier_seconds = point.train_seconds  # a killed session left no metrics.json, only its checkpoints
    if (run_dir / "metrics.json").exists():  # an interrupted one: its time includes the unfinished epoch
        earlier_seconds = max(earlier_seconds, float(
            json.loads((run_dir / "metrics.json").read_text()).get("train_seconds") or 0))
    # Killed between the checkpoint and the history row: the row is put back from the checkpoint's
    # record, and the hand-in file, which that epoch may have been about to write, is written again below.
    restored = align_history(run_dir, point)  # and drops rows of epochs whose checkpoint was lost
    history = read_history(run_dir / "history.csv")
    if len(history) < initial_epoch:
        raise ValueError(f"{run_dir / STATE}: says {initial_epoch} epoch(s) finished, but history.csv has "
                         f"{len(history)} row(s): the folder was changed by hand. Restore history.csv, or start "
                         "a new run")
    if monitor and history:
        chosen = choose_epoch(history, monitor, cfg.stop_patience)
        best_epoch, best = chosen.best_epoch, chosen.best
        if chosen.stopped_at is not None and not ended:
            # Keras's count, carried on by ResumedEarlyStopping: an uninterrupted run stopped at
            # best + patience; training on would make a different run under the same arguments.
            ended = (f"no {monitor} improvement in the {initial_epoch - (best_epoch or 0)} epochs since its "
                     f"best (epoch {best_epoch}), so with patience {cfg.stop_patience} it stopped at epoch "
                     f"{chosen.stopped_at} and there is nothing to resume")
    # The restored epoch is the one the hand-in file holds (the best so far, or any epoch of a --full run)
    rewrite = restored and (not monitor or best_epoch == initial_epoch)
    if restored:
        notes.append(f"{run_dir}: its session stopped between epoch {initial_epoch}'s checkpoint and its "
                     "history row; restored the row from the checkpoint's record"
                     + (" and wrote the hand-in file from the checkpoint" if rewrite else ""))
    if ended:
        # Killed after its last epoch but before metrics.json: the file is saved and the history
        # complete, so the run is finished without training (a resumed refit or benchmark goes on).
        if finished_run(run_dir) is not None or len(history) != initial_epoch \
                or not (rewrite or (run_dir / cfg.export_name).is_file()):
            raise ValueError(f"{run_dir}: already trained; {ended}")
        finish_only = True
        notes.append(f"{run_dir}: training had ended ({ended.split(', so')[0]}) but its session stopped "
                     "before writing the metrics; finished the run without training")
        if best_epoch is None:  # a --full run: its file is the last epoch's
            best_epoch = initial_epoch
        if monitor and not point.stopped_early and initial_epoch < cfg.epochs:
            mark_stopped_early(run_dir)  # as the session would have, had it lived
    model = load_checkpoint(run_dir)  # after every refusal: loading is the slow part
    models = AgeGenderModels(model, export_from_train(model, cfg.output_order, cfg.tta), find_backbone(model))
    if rewrite:
        with averaged_weights(model, cfg.ema):  # what SaveBest saw after SwapEMAWeights
            save_hand_in(models.export, run_dir / cfg.export_name)
    return Resumed(models, initial_epoch, best, best_epoch, earlier_seconds, finish_only)
