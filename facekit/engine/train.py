"""``facekit train``: fit Model A or B on a prep cache and leave a complete run folder.

The best model (by the monitored validation metric) is exported whenever it
improves, and the training state is saved every epoch, so an interrupted run
keeps its best model and history and can be resumed.
"""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

from facekit.contract import AGE_DISTRIBUTION, INPUT_SHAPE, PIXEL_SCALE, RACE
from facekit.data.augment import build_augment
from facekit.data.cache import CacheData, choose_mode, read_cache, take
from facekit.data.dataset import FaceBatches
from facekit.data.labelled import load_labelled
from facekit.data.labels import parse_name
from facekit.data.split import RunSplit, count_twins, template_split, write_run_split
from facekit.engine.callbacks import (
    ResumedEarlyStopping,
    SaveBest,
    SaveLast,
    ScoreEpoch,
    StopOnNaN,
    averaged_weights,
)
from facekit.engine.device import MallocDefaults, describe, set_precision
from facekit.engine.distill import check_teacher_split, mean_targets, teacher_targets
from facekit.engine.distribute import Plan, distributed, plan, sync_batch_norm
from facekit.engine.optimizer import adamw
from facekit.engine.recipe import TrainConfig
from facekit.engine.resume import TrainResult, continue_run, open_run
from facekit.engine.runs import (
    log_training,
    mark_stopped_early,
    new_run_dir,
    plot_curves,
    plot_model,
    read_history,
    save_checkpoint,
    write_summary,
)
from facekit.engine.selection import SCORE
from facekit.engine.snapshots import (
    SaveSnapshots,
    cycle_ends,
    merge_snapshots,
    merge_worse_than_single,
    missing_before,
    save_snapshot,
)
from facekit.face.template import RUN_TEMPLATE, read_template
from facekit.model.backbones import get_backbone, resolve_weights
from facekit.model.files import open_model
from facekit.model.losses import MEAN_WEIGHT, DistributionVariance, LabelAccuracy
from facekit.model.models import AgeGenderModels, build_finetune, build_scratch, export_from_train, find_backbone
from facekit.utils.atomic import write_json


class TrainingDiverged(ValueError):
    """The loss became NaN or infinite before any epoch gave a model: nothing was exported."""

    def __init__(self, run_dir: Path, where: tuple[int, int, float], lr: float) -> None:
        epoch, batch, loss = where
        super().__init__(f"{run_dir}: the training loss became {loss} at epoch {epoch}, batch {batch}, before any "
                         f"epoch gave a model, so no model file was written. Lower the learning rate (--lr, "
                         f"{lr:g} in this run) or check the cache's labels (`facekit prep DIR --force`)")
        self.run_dir = run_dir


class TrainingInterrupted(Exception):
    """Ctrl-C during training; the run folder still holds the best model so far."""

    def __init__(self, run_dir: Path, saved: bool = True) -> None:
        what = "best model so far and history are" if saved else "no epoch finished, so no model was saved; args are"
        super().__init__(f"training interrupted; {what} in {run_dir}")
        self.run_dir = run_dir


def plan_phases(cfg: TrainConfig, has_backbone: bool) -> list[tuple[str, int, int]]:
    """(phase, first epoch, end epoch): a head-only warm-up with the backbone frozen, then the whole network,
    in ``--snapshots`` cycles (each phase compiles its own warm-up and cosine schedule)."""
    freeze = min(cfg.freeze_epochs, cfg.epochs) if has_backbone else 0
    phases = [("frozen", 0, freeze)] if freeze else []
    ends = cycle_ends(freeze, cfg.epochs, cfg.snapshots)
    return phases + [("full", first, end) for first, end in zip([freeze, *ends[:-1]], ends) if end > first]


def compile_train(model: keras.Model, cfg: TrainConfig, steps_per_epoch: int, epochs: int,
                  constant_lr: float | None = None, lr: float | None = None) -> None:
    """``lr`` overrides ``cfg.lr`` (scaled for several devices)."""
    peak = cfg.lr if lr is None else lr
    total = max(1, steps_per_epoch * epochs)
    warm = min(total - 1, steps_per_epoch * cfg.warmup_epochs) if constant_lr is None else 0
    schedule: Any = constant_lr if constant_lr is not None else keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=peak * 0.01 if warm else peak, decay_steps=max(1, total - warm), alpha=0.01,
        warmup_target=peak if warm else None, warmup_steps=warm,
    )
    # Keras's EMA has no warm-up, so a fixed 0.999 still carried half the random initial weights
    # after 10 epochs of 63 steps (measured: 26.5 MAE). By default the average has a half-life of one epoch.
    momentum = cfg.ema_momentum or 0.5 ** (1 / max(1, steps_per_epoch))
    opt = adamw(model, find_backbone(model), cfg.backbone_lr, cfg.layer_decay, learning_rate=schedule,
                weight_decay=cfg.weight_decay, use_ema=cfg.ema, ema_momentum=momentum)
    opt.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    loss: dict[str, Any] = {AGE_DISTRIBUTION: keras.losses.CategoricalCrossentropy(),
                            "gender": keras.losses.BinaryCrossentropy(label_smoothing=cfg.label_smoothing)}
    weights = {AGE_DISTRIBUTION: cfg.age_weight, "gender": cfg.gender_weight}
    if cfg.mean_variance:
        loss[AGE_DISTRIBUTION] = DistributionVariance()
        loss["age"] = keras.losses.MeanSquaredError()
        weights["age"] = cfg.age_weight * MEAN_WEIGHT / 2  # the paper's mean loss is half the squared error
    extra: dict[str, Any] = {}
    if cfg.race_weight:  # the auxiliary head's loss, and its accuracy in the history (training only)
        loss[RACE] = keras.losses.CategoricalCrossentropy()
        weights[RACE] = cfg.race_weight
        extra[RACE] = [keras.metrics.CategoricalAccuracy(name="accuracy")]
    # Soft gender targets need LabelAccuracy; hard ones keep the built-in, whose checkpoint
    # (last.keras) then still loads in a plain Keras process.
    soft = bool(cfg.teachers) or cfg.mix != "none"
    accuracy = LabelAccuracy() if soft else keras.metrics.BinaryAccuracy(name="accuracy")
    model.compile(
        optimizer=opt,
        loss=loss,
        loss_weights=weights,
        # Weighted: validation over several devices pads its last batch with weight-0 copies
        # (FaceBatches), which plain compiled metrics would count. Without weights they are the same.
        weighted_metrics={"age": [keras.metrics.MeanAbsoluteError(name="mae")],
                          "gender": [accuracy], **extra},
        # Tracing the train step costs about 30 s for Model B on a CPU: most of a few-step run.
        run_eagerly=cfg.eager,
    )


def build_models(cfg: TrainConfig) -> AgeGenderModels:
    if cfg.task == "scratch":
        models = build_scratch(tuple(cfg.widths), cfg.hidden, cfg.dropout, cfg.output_order, cfg.arch,
                               race_head=cfg.race_weight > 0)
    else:
        spec = get_backbone(cfg.backbone)
        weights = resolve_weights(spec, cfg.weights, cfg.model_dir)
        models = build_finetune(spec, weights, cfg.internal_size, cfg.hidden, cfg.dropout, cfg.output_order,
                                race_head=cfg.race_weight > 0)
    if cfg.tta:
        models.export = export_from_train(models.train, cfg.output_order, tta=True)
    return models


def select(data: CacheData, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation indices into the cache: the template split, or everything with --full."""
    idx = np.arange(len(data))
    if cfg.limit and cfg.limit < len(data):
        idx = np.sort(np.random.default_rng(cfg.seed).choice(len(data), cfg.limit, replace=False))  # split-side
    if cfg.full:
        return idx, np.array([], dtype=np.int64)
    tr, va = template_split(list(data.filename[idx]), cfg.val_split, cfg.seed)
    return idx[tr], idx[va]


def raw_validation(cfg: TrainConfig, data: CacheData, names: list[str]
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, Path]:
    """The held-out files themselves, read as ``facekit evaluate`` and the lecturer read them, as RGB uint8
    (what FaceBatches takes): the epoch kept is then the one that scores best on what is scored, not on
    aligned crops (5.70 aligned against 5.85 raw on one run)."""
    folder = Path(cfg.raw_dir or str(data.attrs.get("source_dir", "")))
    if not folder.is_dir():
        raise ValueError(f"{cfg.cache} was built from {folder}, which is not here; --val-images raw reads the "
                         "held-out files from it: pass --raw-dir DIR")
    found = load_labelled(folder, names=names)
    if found.unreadable or found.rejected:
        raise ValueError(f"{folder}: {len(found.unreadable) + len(found.rejected)} held-out files cannot be read "
                         f"as the lecturer reads them (first: {(found.unreadable or found.rejected)[0]})")
    bgr = np.rint(found.x * PIXEL_SCALE).astype(np.uint8)  # exact: x is uint8 / 255 in float32
    races = np.array([parse_name(name).race for name in found.names], dtype=np.int64)  # read, so valid
    return bgr[..., ::-1], found.ages, found.genders, races, folder


def held_out(cfg: TrainConfig, data: CacheData, va: np.ndarray, notes: list[str] | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """What a run validates on: the crops of the held-out cache rows ``va``, or with --val-images raw the
    files themselves (``raw_validation``); RGB uint8 images, ages, genders, races."""
    if cfg.val_images == "raw":
        images, ages, genders, races, where = raw_validation(cfg, data, [str(n) for n in data.filename[va]])
        if notes is not None:
            notes.append(f"validating on the {len(ages)} held-out files of {where} as the lecturer reads them")
        return images, ages, genders, races
    return take(data.images, va), data.age[va], data.gender[va], data.race[va]


def train(cfg: TrainConfig, callbacks: list[keras.callbacks.Callback] | None = None,
          resume: str | Path | None = None, given: dict[str, Any] | None = None) -> TrainResult:
    """Train per ``cfg`` (or continue the run in ``resume``) and return where everything went.

    ``given``: the options the user set for this session (the CLI's), which a resumed run applies only where
    they change how it runs, not what it trains (``facekit.engine.resume.session_options``).

    With ``cfg.devices`` above one, everything from building the model to the
    last epoch runs under Keras's data-parallel distribution (``facekit.engine.distribute``).
    """
    devices = cfg.devices
    if resume and (Path(resume) / "args.json").is_file():
        with contextlib.suppress(ValueError, TypeError):  # an unreadable args.json: open_run says which and why
            devices = TrainConfig.load(Path(resume) / "args.json").devices
    dist = plan(devices, cfg.batch_size, cfg.lr)  # refused before any work if this machine cannot
    with distributed(dist):
        return _train(cfg, callbacks, resume, dist.devices, given)


def _train(cfg: TrainConfig, callbacks: list[keras.callbacks.Callback] | None, resume: str | Path | None,
           devices: tuple[str, ...], given: dict[str, Any] | None = None) -> TrainResult:
    notes: list[str] = []
    restart_in: Path | None = None
    if resume:
        run_dir, cfg, restart_in = open_run(Path(resume), notes, given)
        if restart_in is not None:
            resume = None
    cfg.validate()
    dist = Plan(devices, cfg.batch_size, cfg.lr)
    if dist.count > 1:
        notes.append(f"data parallel over {dist.count} devices ({', '.join(devices)}): global batch "
                     f"{dist.global_batch}, learning rate {dist.scaled_lr:g}")
    policy = set_precision(cfg.precision)
    mode, why = choose_mode(cfg.cache, cfg.cache_mode)
    data = read_cache(cfg.cache, in_memory=mode == "memory")
    notes.append(f"cache in {mode}: {why}")
    if data.attrs.get("channel_order") != "RGB":
        raise ValueError(f"{cfg.cache}: channel order {data.attrs.get('channel_order')!r}, expected RGB")
    if data.images.shape[1:] != INPUT_SHAPE:
        raise ValueError(f"{cfg.cache}: crops of {data.images.shape[1:]}, the models take {INPUT_SHAPE}; "
                         "rebuild the cache with `facekit prep --force`")
    tr, va = select(data, cfg)
    if len(tr) == 0 or (not cfg.full and len(va) == 0):
        raise ValueError(f"{cfg.cache}: too few images to split ({len(tr)} train, {len(va)} validation)")

    split = RunSplit(train=[str(n) for n in data.filename[tr]], val=[str(n) for n in data.filename[va]],
                     cache=str(cfg.cache), seed=cfg.seed, val_split=cfg.val_split, full=cfg.full,
                     val_twins_in_train=count_twins(data.content_sha256[tr], data.content_sha256[va]))
    train_images = take(data.images, tr)  # in memory a copy: made once, for the teachers and the loader
    soft = None
    if cfg.teachers:
        notes.extend(n for t in cfg.teachers if (n := check_teacher_split(Path(t), split)))
        targets = mean_targets([teacher_targets(t, train_images, cfg.sigma) for t in cfg.teachers])
        soft = (targets.age_dist, targets.p_female)
        notes.append(f"distilling from {', '.join(cfg.teachers)} ({targets.source}), weight {cfg.distill_weight}")
    train_batches = FaceBatches(train_images, data.age[tr], data.gender[tr], dist.global_batch,
                                build_augment(cfg.augment), shuffle=True, sigma=cfg.sigma, seed=cfg.run_seed,
                                workers=cfg.workers, steps=cfg.steps_per_epoch, mix=cfg.mix,
                                mix_alpha=cfg.mix_alpha, soft=soft, soft_weight=cfg.distill_weight,
                                multiple_of=dist.count, races=data.race[tr] if cfg.race_weight else None)
    val_batches, val_set = None, None
    if not cfg.full:
        images, ages, genders, races = held_out(cfg, data, va, notes)
        val_set = (images, ages, genders)
        val_batches = FaceBatches(images, ages, genders, dist.global_batch, None, sigma=cfg.sigma,
                                  workers=cfg.workers, multiple_of=dist.count,
                                  races=races if cfg.race_weight else None)
    monitor = None if cfg.full else cfg.monitor
    initial_epoch, best, best_epoch, earlier_seconds = 0, math.inf, None, 0.0
    finish_only = False  # training ended in an earlier session, which was killed before writing its metrics
    if resume:
        point = continue_run(run_dir, cfg, split, monitor, notes)
        models, initial_epoch, best, best_epoch = point.models, point.initial_epoch, point.best, point.best_epoch
        earlier_seconds, finish_only = point.earlier_seconds, point.finish_only
    else:
        keras.utils.set_random_seed(cfg.run_seed)
        models = build_models(cfg)  # before the run folder: a bad weights file leaves no empty run behind
        run_dir = restart_in or new_run_dir(cfg.project, cfg.task, cfg.name)
        template = data.attrs.get("template")
        digest = None
        if isinstance(template, dict):  # predict frames faces with the template the crops were aligned to
            write_json(run_dir / RUN_TEMPLATE, template)
            digest = read_template(run_dir / RUN_TEMPLATE).digest()
        write_json(run_dir / "args.json", {**cfg.to_json(), "template_digest": digest,
                                           "distribution": dist.to_json()})
        write_run_split(run_dir, split)
    phases = plan_phases(cfg, models.backbone is not None)
    ends = [end for phase, _, end in phases if phase == "full"] if cfg.snapshots > 1 else []  # the cycles' ends
    if ends and cfg.patience and monitor:
        notes.append(f"early stopping is off: a snapshot run's restarts raise the loss on purpose (--patience "
                     f"{cfg.patience} unused)")
    for end, lost in missing_before(run_dir, ends, initial_epoch):
        if end != initial_epoch:  # only the epoch the checkpoint holds can be written again
            raise ValueError(f"{lost}: missing, and epoch {end} that it kept is gone; a snapshot run cannot "
                             "be resumed without it: restore it, or start a new run")
        with averaged_weights(models.train, cfg.ema):  # killed between the checkpoint and the snapshot
            save_snapshot(models.export, lost)
        notes.append(f"{lost}: written again from the checkpoint of epoch {end}")
    if sync_batch_norm(models.train, dist):
        notes.append("batch normalisation synchronised over the devices (TensorFlow)")
    model_path = run_dir / cfg.export_name
    nan_stop = StopOnNaN()
    steps = len(train_batches)
    save_best = SaveBest(models.export, model_path, monitor, best, best_epoch)
    start = time.perf_counter()

    def seconds() -> float:
        return earlier_seconds + time.perf_counter() - start

    save_last = SaveLast(run_dir, seconds)
    csv_log = keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=bool(resume))
    stop = None
    if monitor and cfg.stop_patience:
        stop = ResumedEarlyStopping(monitor=monitor, patience=cfg.stop_patience, mode="min", restore_best_weights=True,
                                    best=best, wait=initial_epoch - best_epoch if best_epoch else 0)

    interrupted = False
    plan = [] if finish_only else phases
    if any(end > initial_epoch for _, _, end in plan):
        log_training(run_dir, cfg.task, resumed=initial_epoch > 0)
    try:
        for phase, first, end in plan:
            if end <= initial_epoch:
                continue
            if initial_epoch <= first:  # the phase starts now; a resumed one keeps its loaded optimizer
                if models.backbone is not None:
                    models.backbone.trainable = phase == "full"
                compile_train(models.train, cfg, steps, end - first,
                              constant_lr=dist.scaled_lr if phase == "frozen" else None, lr=dist.scaled_lr)
            # A fresh EMA swapper per fit: one left over from the previous phase would swap
            # the new optimizer's unbuilt averages into the model.
            ema = [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if cfg.ema else []
            # The score first: saving, the CSV and early stopping read it from the logs it adds to.
            score = [ScoreEpoch()] if monitor == SCORE else []
            snapshots = [SaveSnapshots(models.export, run_dir, ends)] if ends else []
            cbs = [MallocDefaults(), nan_stop, *score, save_last, *ema, save_best, *snapshots, csv_log,
                   *([stop] if stop else []), *(callbacks or [])]
            models.train.fit(train_batches, validation_data=val_batches, epochs=end,
                             initial_epoch=max(first, initial_epoch), callbacks=cbs, verbose=0)
            csv_log.append = True  # the next phase must not overwrite this one's rows
            if nan_stop.where:
                break
            if stop is not None and stop.stopped_epoch > 0:
                mark_stopped_early(run_dir)
                break
            if end < cfg.epochs:
                # The weights the next phase starts from (with EMA: the average, as fit leaves them).
                save_checkpoint(run_dir, models.train, end, seconds())
    except KeyboardInterrupt:
        interrupted = True

    history = read_history(run_dir / "history.csv")
    merged = None  # the snapshot ensemble's record, once the last cycle is done
    if ends and not interrupted and not nan_stop.where and len(history) >= cfg.epochs:
        merged = merge_snapshots(run_dir, ends, model_path, cfg.output_order, val_set)
        notes.append(f"snapshot ensemble: {model_path.name} is the merge of the {len(ends)} cycles' last epochs "
                     f"({', '.join(map(str, ends))})")
    # Interrupted before the first epoch ended: no model is written, rather than an untrained
    # file under the hand-in name.
    saved = model_path.exists()
    metrics = {
        "model": str(model_path) if saved else None,
        "task": cfg.task,
        "backbone": cfg.backbone if cfg.task == "finetune" else None,
        "epochs_run": len(history),
        "best_epoch": save_best.best_epoch,
        "monitor": monitor,
        "val_age_mae": save_best.best_logs.get("val_age_mae"),
        "val_gender_accuracy": save_best.best_logs.get("val_gender_accuracy"),
        "val_score": save_best.best_logs.get(SCORE),  # with --monitor val_score only
        "train_images": int(len(tr)),
        "val_images": int(len(va)),
        "val_twins_in_train": split.val_twins_in_train,  # pixel-identical copies: their scores are not unseen
        "train_seconds": round(seconds(), 1),  # all sessions of the run
        "precision": policy,
        "cache_mode": mode,
        "devices": dist.count,
        "interrupted": interrupted,
        "diverged": dict(zip(("epoch", "batch", "loss"), nan_stop.where)) if nan_stop.where else None,
        **describe(),
    }
    if resume and save_best.best_logs == {} and best_epoch:
        row = history[best_epoch - 1]
        metrics.update(val_age_mae=row.get("val_age_mae"), val_gender_accuracy=row.get("val_gender_accuracy"),
                       val_score=row.get(SCORE))
    if merged is not None:  # the file is every cycle's merge: its figures, and the run's length as its epoch
        merged["best_single"] = {k: metrics.get(k) for k in ("best_epoch", "val_age_mae", "val_gender_accuracy",
                                                              "val_score")}  # what one epoch's file scored
        metrics.update(best_epoch=len(history), snapshots=merged,
                       **{k: merged.get(k) for k in ("val_age_mae", "val_gender_accuracy", "val_score")})
        if warning := merge_worse_than_single(merged, run_dir):
            notes.append(warning)
    plot_curves(history, run_dir)
    handed_in = open_model(model_path).model if merged is not None else models.export  # what summary.txt shows
    write_summary(handed_in, run_dir)
    plot_note = plot_model(handed_in, run_dir)
    if not plot_note.endswith("model.png"):
        notes.append(plot_note)
    metrics["plot_model"] = plot_note
    write_json(run_dir / "metrics.json", metrics)
    if interrupted:
        raise TrainingInterrupted(run_dir, saved)
    if nan_stop.where and not saved:
        raise TrainingDiverged(run_dir, nan_stop.where, cfg.lr)
    if nan_stop.where:
        epoch, batch, loss = nan_stop.where
        notes.append(f"training stopped at epoch {epoch}, batch {batch}: the loss became {loss}; the model file is "
                     f"epoch {save_best.best_epoch}'s, the best before it (a lower --lr than {cfg.lr:g} may train "
                     "further)")
    if not saved:  # never a path to a file that is not there
        raise ValueError(f"{run_dir}: training ended without a model file (no epoch's validation figure was a "
                         "number)")
    return TrainResult(run_dir, model_path, metrics, notes)
