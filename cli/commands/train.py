"""`facekit train`: options parsed here, the run itself in facekit.engine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from facekit.contract import CHECK_KERAS
from facekit.engine.selection import GENDER_POINT_YEARS
from facekit_cli.options import (
    FINETUNE_ONLY,
    SCRATCH_ONLY,
    Arch,
    Augment,
    CacheMode,
    JsonOpt,
    Mix,
    ModelDirOpt,
    Monitor,
    OutputOrder,
    Precision,
    Task,
    ValImages,
    keras_versions,
    print_check,
    value_of,
)
from facekit_cli.ui import console, err_console, fail, print_json, reason


def train(
    task: Annotated[Task, typer.Argument(help="scratch: Model A, a CNN from random weights; "
                                         "finetune: Model B, an ImageNet backbone.")],
    cache: Annotated[Path, typer.Option(help="HDF5 cache from `facekit prep`.")] = Path("cache/train_val.h5"),
    epochs: Annotated[int | None, typer.Option(min=1, help="Epochs (default 60 for scratch, 40 for finetune).")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Batch size (default 64).")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate (default 1e-3 scratch, 5e-4 finetune).")] = None,
    weight_decay: Annotated[float | None, typer.Option(help="AdamW weight decay (default 1e-4).")] = None,
    augment: Annotated[Augment | None, typer.Option(help="Augmentation strength (default: default).")] = None,
    val_split: Annotated[float | None, typer.Option(help="Validation fraction of the template split (0.2).")] = None,
    seed: Annotated[int | None, typer.Option(help="Split and training seed (0: the course template's split).")]
    = None,
    init_seed: Annotated[int | None, typer.Option(help="Seed for weights, shuffling and augmentation only "
                                                  "(default: --seed), to repeat runs on one split.")] = None,
    full: Annotated[bool, typer.Option("--full", metavar="", help="Train on all images for exactly --epochs "
                                       "(take the epoch count from a validation run's metrics.json).")] = False,
    refit: Annotated[bool, typer.Option("--refit", metavar="", help="After the run, train again on all images "
                                        "for its best epoch count (a second run folder, NAME-full); that "
                                        "run's file is the hand-in. With --resume RUN, finishes an "
                                        "interrupted refit.")] = False,
    val_images: Annotated[ValImages | None, typer.Option(help="Validate on the cache's aligned crops (default) "
                                                         "or on the held-out files themselves, read as the "
                                                         "lecturer reads them (raw).")] = None,
    raw_dir: Annotated[Path | None, typer.Option(help="Where --val-images raw finds the files (default: the "
                                                 "folder the cache was built from).")] = None,
    patience: Annotated[int | None, typer.Option(help="Early-stopping patience in epochs (0: off; default 12 "
                                                 "scratch, 0 finetune).")] = None,
    monitor: Annotated[Monitor | None, typer.Option(help="What picks the hand-in epoch and drives early "
                                                    "stopping: val_age_mae, or val_score, age MAE plus "
                                                    f"{GENDER_POINT_YEARS} per point of gender error (default "
                                                    "val_age_mae scratch, val_score finetune).")]
    = None,
    ema: Annotated[bool | None, typer.Option("--ema/--no-ema", metavar="",
                                             help="Validate and export an exponential moving average of the "
                                                  "weights (default: on finetune, off scratch).")]
    = None,
    ema_momentum: Annotated[float | None, typer.Option(help="EMA momentum per step (default: a half-life of "
                                                       "one epoch).")] = None,
    mix: Annotated[Mix | None, typer.Option(help="Batch mixing (default: none).")] = None,
    mix_alpha: Annotated[float | None, typer.Option(help="Beta(a, a) for --mix (default 0.2 mixup, "
                                                    "1.0 cutmix).")] = None,
    mean_variance: Annotated[bool | None, typer.Option("--mean-variance/--no-mean-variance",
                                                       metavar="", help="Add the mean-variance age loss.")] = None,
    sigma: Annotated[float | None, typer.Option(help="Width in years of the Gaussian age target (default 2).")]
    = None,
    teacher: Annotated[list[Path] | None, typer.Option(help="Distil from this trained model (e.g. Model B into A; "
                                                       "repeat for an ensemble: their mean); it must come from "
                                                       "the same split.")] = None,
    distill_weight: Annotated[float | None, typer.Option(help="Share of the teachers in the targets "
                                                         "(default 0.5).")] = None,
    tta: Annotated[bool | None, typer.Option("--tta/--no-tta", metavar="",
                                             help="Test-time flip averaging, built into the "
                                             "exported file (default on; built-in layers; twice the inference "
                                             "cost).")] = None,
    arch: Annotated[Arch | None, typer.Option(help="residual (default): a strided stem and residual blocks; "
                                              "plain: VGG-style, 2 convolutions a stage, about 2.4x slower.",
                                              rich_help_panel=SCRATCH_ONLY)] = None,
    backbone: Annotated[str | None, typer.Option(help="Backbone name (see `facekit backbones`).",
                                                 rich_help_panel=FINETUNE_ONLY)] = None,
    weights: Annotated[str | None, typer.Option(help="imagenet, none or a weights file.",
                                                rich_help_panel=FINETUNE_ONLY)] = None,
    internal_size: Annotated[int | None, typer.Option(help="Resolution inside the model (default 160; the input "
                                                      "stays 128).", rich_help_panel=FINETUNE_ONLY)] = None,
    freeze_epochs: Annotated[int | None, typer.Option(help="Epochs with the backbone frozen first.",
                                                      rich_help_panel=FINETUNE_ONLY)] = None,
    output_order: Annotated[OutputOrder | None, typer.Option(help="Order of the two outputs (default age,gender).")]
    = None,
    precision: Annotated[Precision | None, typer.Option(help="auto: mixed_float16 on a GPU, float32 on a CPU.")]
    = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Parallel workers: threads that load and augment "
                                                "batches (default 4).")] = None,
    cache_mode: Annotated[CacheMode | None, typer.Option(help="memory: every crop in memory; stream: each batch "
                                                         "read from the cache (flat memory, any size); auto "
                                                         "(default): memory when the crops fit.")] = None,
    devices: Annotated[str | None, typer.Option(help="all, or how many devices to train on (data parallel); "
                                                "--batch-size is per device and the learning rate "
                                                "scales with the count (default 1).")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Use a random subset of N cached images.")] = None,
    steps: Annotated[int | None, typer.Option(min=1, help="Cap batches per epoch (quick trials).")] = None,
    project: Annotated[str | None, typer.Option(help="Folder of runs (default runs).")] = None,
    name: Annotated[str | None, typer.Option(help="Run name (default exp, exp2, ...).")] = None,
    resume: Annotated[Path | None, typer.Option(help="Continue the run in this folder (its args.json wins).")]
    = None,
    check_after: Annotated[bool, typer.Option("--check/--no-check", metavar="",
                                              help="Run `facekit check` on the hand-in "
                                              "file at the end (recorded in metrics.json).")] = True,
    check_keras: Annotated[str | None, typer.Option(help="Keras versions that check loads the file with "
                                                    f"(default {','.join(CHECK_KERAS)}; 'none': this Keras "
                                                    "only).")] = None,
    model_dir: ModelDirOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Train Model A (scratch) or Model B (finetune) on a prep cache; writes a run folder."""
    from facekit.data.cache import CacheError
    from facekit.engine.recipe import TrainConfig
    from facekit.engine.train import TrainingInterrupted
    from facekit.engine.train import train as run_train
    from facekit.utils.modelfiles import ModelFileError
    from facekit_cli.train_progress import RichProgress

    finetune_only = {"backbone": backbone, "weights": weights, "internal_size": internal_size,
                     "freeze_epochs": freeze_epochs}
    if task is Task.scratch and any(v is not None for v in finetune_only.values()):
        fail("--backbone, --weights, --internal-size and --freeze-epochs apply to `train finetune` only")
    if task is Task.finetune and arch is not None:
        fail("--arch applies to `train scratch` only (Model B's architecture is its --backbone)")
    try:
        cfg = TrainConfig.for_task(
            task.value, cache=str(cache), epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
            augment=value_of(augment), val_split=val_split, seed=seed, init_seed=init_seed, full=full or None,
            val_images=value_of(val_images), raw_dir=str(raw_dir) if raw_dir else None, arch=value_of(arch),
            patience=patience, monitor=value_of(monitor), ema=ema, ema_momentum=ema_momentum, mix=value_of(mix),
            mix_alpha=mix_alpha,
            mean_variance=mean_variance, sigma=sigma,
            tta=tta, teachers=tuple(map(str, teacher or ())) or None, distill_weight=distill_weight,
            output_order=value_of(output_order), precision=value_of(precision), workers=workers, limit=limit,
            cache_mode=value_of(cache_mode), devices=devices,
            steps_per_epoch=steps,
            project=project, name=name, model_dir=str(model_dir) if model_dir else None,
            check_keras=keras_versions(check_keras) if check_keras is not None else None, **finetune_only,
        )
    except (TypeError, ValueError) as exc:
        fail(str(exc))
    if refit and full:
        fail("--refit runs the split itself and then the refit on all images; leave out --full")
    try:
        if refit:
            from facekit.engine.refit import refit as run_refit

            chosen, result = run_refit(cfg, None if json_out else lambda epochs: [RichProgress(epochs)], resume)
            if not json_out:
                cm = chosen.metrics
                console.print(f"[green]split run[/] {chosen.run_dir}: best epoch {cm['best_epoch']}, validation "
                              f"age MAE {cm['val_age_mae']:.2f}, gender accuracy {cm['val_gender_accuracy']:.1%}")
        else:
            result = run_train(cfg, callbacks=[] if json_out else [RichProgress(cfg.epochs)], resume=resume)
    except TrainingInterrupted as exc:
        fail(str(exc), code=130)
    except (OSError, ValueError, CacheError, ModelFileError) as exc:
        fail(reason(exc))
    report = None
    if check_after:
        from facekit.engine.run_check import check_run

        # A resumed run keeps its args.json; an explicit --check-keras still wins for this check.
        versions = keras_versions(check_keras) if check_keras is not None else None
        with err_console.status("checking the hand-in file", spinner="dots") as spin:
            report = check_run(result.run_dir, versions,
                               status=None if json_out else lambda msg: spin.update(f"check: {msg}"))
        result.metrics["check"] = report.to_json()
    if json_out:
        print_json({"run_dir": str(result.run_dir), **result.metrics})
        if report is not None and not report.passed:
            raise typer.Exit(1)
        return
    m = result.metrics
    which = f"best epoch {m['best_epoch']} by {m['monitor']}" if m["monitor"] else \
        "no validation (--full): last epoch saved"
    if m.get("refit_of"):
        which = f"all images for the split run's best {m['refit_of']['best_epoch']} epochs, last epoch saved"
    console.print(f"[green]done[/] in {m['train_seconds']:.0f} s ({m['backend']}, {m['gpu'] or 'CPU'}): "
                  f"{m['epochs_run']} epoch{'s' if m['epochs_run'] != 1 else ''}, {which}")
    if m["val_age_mae"] is not None:
        console.print(f"validation: age MAE {m['val_age_mae']:.2f}, gender accuracy "
                      f"{m['val_gender_accuracy']:.1%} ({m['val_images']} images)"
                      + (f", score {m['val_score']:.2f}" if m.get("val_score") is not None else ""))
    console.print(f"model: {result.model_path}\nrun folder: {result.run_dir}")
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    if report is not None:
        print_check(report)
        if not report.passed:
            fail(f"{result.model_path} did not pass `facekit check` (above); the run folder is complete, "
                 "but this file may not score on the lecturer's machine")


