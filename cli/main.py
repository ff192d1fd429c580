"""The ``facekit`` command: thin wrappers that parse options, call the library and print results."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from facekit.choices import (
    AUGMENT_STRENGTHS,
    BACKENDS,
    CACHE_MODES,
    ENGINES,
    MIXES,
    MONITORS,
    PRECISIONS,
    SCRATCH_ARCHS,
    SPLITS,
    VAL_IMAGES,
)
from facekit.contract import CHECK_KERAS, OUTPUT_ORDERS
from facekit.selection import GENDER_POINT_YEARS
from facekit_cli.native_log import filter_native_stderr
from facekit_cli.ui import console, err_console, fail, interrupt_once, print_json, progress_bar, reason

app = typer.Typer(
    name="facekit",
    help="Age and gender models from UTKFace-style face images: prep, train, check, predict, evaluate.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        from facekit import __version__

        console.print(f"facekit {__version__}", highlight=False)
        raise typer.Exit()


# Set by main(): the native log filter rewires this process's stderr, which only the real program may do
# (not a test calling the app in-process).
_PROGRAM = {"filter_logs": False}


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          metavar="", help="Print facekit's version and exit.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", metavar="",
                                          help="Show the TensorFlow, absl, MediaPipe and LiteRT log lines "
                                          "facekit hides (give it before the command).")] = False,
) -> None:
    """Age and gender models from UTKFace-style face images: prep, train, check, predict, evaluate."""
    if _PROGRAM["filter_logs"] and not verbose:
        filter_native_stderr()

def _choices(name: str, values: tuple[str, ...]) -> type[Enum]:
    """A choice option from the library's own list: help shows the values, anything else is refused (exit 2)."""
    return Enum(name, [(v, v) for v in values], type=str)  # type: ignore[return-value]


Augment = _choices("Augment", AUGMENT_STRENGTHS)
Mix = _choices("Mix", MIXES)
Precision = _choices("Precision", PRECISIONS)
OutputOrder = _choices("OutputOrder", OUTPUT_ORDERS)
Split = _choices("Split", SPLITS)
Backend = _choices("Backend", BACKENDS)
Engine = _choices("Engine", ENGINES)
CacheMode = _choices("CacheMode", CACHE_MODES)
ValImages = _choices("ValImages", VAL_IMAGES)
Arch = _choices("Arch", SCRATCH_ARCHS)
Monitor = _choices("Monitor", MONITORS)
FINETUNE_ONLY = "Model B only (train finetune)"
SCRATCH_ONLY = "Model A only (train scratch)"


def _value(choice: Enum | None) -> str | None:
    return None if choice is None else choice.value


ModelDirOpt = Annotated[
    Path | None,
    typer.Option("--model-dir", help="Directory with local model files (mediapipe/, keras/); "
                 "default: $FACEKIT_MODEL_DIR, else download into ~/.cache/facekit/models."),
]
WorkersOpt = Annotated[int | None, typer.Option("--workers", "-w", min=1,
                                                help="Parallel workers: processes (default: all cores).")]
JsonOpt = Annotated[bool, typer.Option("--json", metavar="", help="Print machine-readable JSON instead of text.")]
KerasOpt = Annotated[str | None, typer.Option(
    "--keras", help="Keras versions to load the file with too, each in an isolated environment created with "
    "pip on first use (in ~/.cache/facekit/keras-envs, or $FACEKIT_KERAS_ENVS); 'none': this environment's "
    f"Keras only. Default: {','.join(CHECK_KERAS)} (the oldest supported and Colab's since 2025).")]


def _keras_versions(text: str | None) -> tuple[str, ...]:
    from facekit.keras_envs import parse_specs

    if text is None:
        return CHECK_KERAS
    try:
        return parse_specs(text)
    except ValueError as exc:
        fail(str(exc))


def _print_check(report) -> None:
    console.print(f"[bold]{report.path}[/] (Model {report.kind or '?'})", highlight=False)
    for c in report.checks:
        mark = "[yellow]SKIP[/]" if c.untested else {True: "[green]PASS[/]", False: "[red]FAIL[/]",
                                                     None: "[blue]INFO[/]"}[c.ok]
        console.print(f"  {mark} {c.name}: ", end="", highlight=False)
        console.print(c.detail, markup=False, highlight=False)
    if report.passed:
        verdict = "[green]meets the contract[/]"
    elif all(c.ok is not False for c in report.checks):
        verdict = (f"[yellow]NOT VERIFIED[/]: {len(report.untested)} Keras version(s) could not be tested; "
                   "nothing failed where it could be tested")
    else:
        verdict = "[red]does NOT meet the contract[/]"
    console.print("  verdict: " + verdict)


@app.command()
def prep(
    folder: Annotated[Path, typer.Argument(help="Folder of UTKFace-style images (labels in the file names).")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Cache file (default: cache/<folder>.h5).")] = None,
    align: Annotated[bool, typer.Option("--align/--no-align", metavar="", help="Detect and align faces (--no-align: "
                                        "keep images as they are, resized to 128 x 128).")] = True,
    drop_unaligned: Annotated[bool, typer.Option(metavar="", help="Leave out images where no face was found.")] = False,
    min_confidence: Annotated[float, typer.Option(min=0.0, max=1.0, help="Minimum face detection confidence.")]
    = 0.5,
    force: Annotated[bool, typer.Option("--force", "-f", metavar="",
                                        help="Detect every image again, even where an up-to-date cache (or an "
                                        "interrupted run's rows) could be reused.")] = False,
    template: Annotated[Path | None, typer.Option(help="Alignment template JSON from `facekit template` "
                                                  "(default: the one facekit ships).")] = None,
    detections: Annotated[Path | None, typer.Option(
        help="Align from the face points saved by --save-detections instead of detecting (same crops; "
        "no MediaPipe needed where every image's pixels match).")] = None,
    save_detections: Annotated[Path | None, typer.Option(
        help="Also write the cache's face points to this JSON file (about 360 bytes an image), for "
        "--detections on another machine.")] = None,
    workers: WorkersOpt = None,
    model_dir: ModelDirOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Detect, align and label every face image of FOLDER into an HDF5 cache, with a quality report."""
    from facekit.cache import CacheError
    from facekit.modelfiles import ModelFileError
    from facekit.prep import PrepError, PrepOptions
    from facekit.prep import prep as run_prep
    from facekit.report import summary_lines
    from facekit.template import read_template

    if not folder.is_dir():
        fail(f"{folder}: not a directory (prep takes the folder of images)")
    try:
        options = PrepOptions(align=align, drop_unaligned=drop_unaligned, min_confidence=min_confidence)
        tpl = read_template(template) if template else None
        with progress_bar(f"prep {folder.name}", quiet=json_out) as bar:
            result = run_prep(folder, out, options, workers=workers, force=force, template=tpl,
                              model_dir=str(model_dir) if model_dir else None, progress=bar,
                              detections=detections, save_detections_to=save_detections)
    except (OSError, ValueError, CacheError, ModelFileError, PrepError) as exc:
        fail(reason(exc))
    except KeyboardInterrupt:
        from facekit.prep import PARTIAL, default_cache_path, sidecar

        kept = sidecar(out or default_cache_path(folder), PARTIAL)
        fail("interrupted; the cache was not written (it is replaced only when complete)"
             + (f"; the images done so far are kept in {kept} and the same command resumes from them"
                if kept.exists() else ""), code=130)
    if json_out:
        print_json({"cache": str(result.cache), "reused": result.reused, "report": result.report,
                    "detections_saved": str(save_detections) if save_detections else None})
        return
    if result.reused:
        console.print(f"[green]cache up to date[/]: {result.cache} (use --force to rebuild)")
    else:
        reused = (f" ({result.reused_rows} unchanged images reused, not detected again)" if result.reused_rows
                  else "")
        if result.from_detections:
            reused += f" ({result.from_detections} aligned from {detections}, not detected)"
        console.print(f"[green]wrote[/] {result.cache}{reused}")
    for line in summary_lines(result.report):
        console.print(line, highlight=False, markup=False)
    console.print(f"report: {result.report_path}")
    if save_detections:
        console.print(f"detections: {save_detections}")
    if result.samples_png:
        console.print(f"samples: {result.samples_png}")
    if result.pairs_png:
        console.print(f"original vs aligned: {result.pairs_png}")


@app.command()
def template(
    folder: Annotated[Path, typer.Argument(help="Folder of UTKFace chips (all one square size).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the template JSON (never over the "
                                      "one facekit ships); use it with `facekit prep --template`.")]
    = Path("template.json"),
    limit: Annotated[int | None, typer.Option(help="Use a random sample of this many chips.")] = None,
    workers: WorkersOpt = None,
    model_dir: ModelDirOpt = None,
) -> None:
    """Re-derive the alignment template from the chips' own landmarks (median of each point).

    Models trained from a cache built with it keep a copy in their run folder, and predict frames faces with it."""
    from facekit.modelfiles import ModelFileError
    from facekit.prep import PrepError, derive_template
    from facekit.template import check_destination, save_template

    if not folder.is_dir():
        fail(f"{folder}: not a directory (template takes the folder of chips)")
    try:
        check_destination(out)  # before minutes of measuring
        with progress_bar(f"measure {folder.name}") as bar:
            tpl = derive_template(folder, limit=limit, workers=workers,
                                  model_dir=str(model_dir) if model_dir else None, progress=bar)
        save_template(tpl, out)
    except (OSError, ValueError, ModelFileError, PrepError) as exc:
        fail(reason(exc))
    console.print(f"[green]wrote[/] {out} from {tpl.meta['faces']} faces; use it with "
                  f"`facekit prep DIR --template {out}`", highlight=False)
    for name, (x, y) in zip(tpl.to_json()["point_names"], tpl.points):
        console.print(f"  {name:12s} x {x:6.2f}  y {y:6.2f}")


class Task(str, Enum):
    scratch = "scratch"
    finetune = "finetune"


class Kind(str, Enum):
    A = "A"
    B = "B"


@app.command()
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
    from facekit.cache import CacheError
    from facekit.modelfiles import ModelFileError
    from facekit.recipe import TrainConfig
    from facekit.train import TrainingInterrupted
    from facekit.train import train as run_train
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
            augment=_value(augment), val_split=val_split, seed=seed, init_seed=init_seed, full=full or None,
            val_images=_value(val_images), raw_dir=str(raw_dir) if raw_dir else None, arch=_value(arch),
            patience=patience, monitor=_value(monitor), ema=ema, ema_momentum=ema_momentum, mix=_value(mix),
            mix_alpha=mix_alpha,
            mean_variance=mean_variance, sigma=sigma,
            tta=tta, teachers=tuple(map(str, teacher or ())) or None, distill_weight=distill_weight,
            output_order=_value(output_order), precision=_value(precision), workers=workers, limit=limit,
            cache_mode=_value(cache_mode), devices=devices,
            steps_per_epoch=steps,
            project=project, name=name, model_dir=str(model_dir) if model_dir else None,
            check_keras=_keras_versions(check_keras) if check_keras is not None else None, **finetune_only,
        )
    except (TypeError, ValueError) as exc:
        fail(str(exc))
    if refit and full:
        fail("--refit runs the split itself and then the refit on all images; leave out --full")
    try:
        if refit:
            from facekit.refit import refit as run_refit

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
        from facekit.check import check_run

        # A resumed run keeps its args.json; an explicit --check-keras still wins for this check.
        versions = _keras_versions(check_keras) if check_keras is not None else None
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
        _print_check(report)
        if not report.passed:
            fail(f"{result.model_path} did not pass `facekit check` (above); the run folder is complete, "
                 "but this file may not score on the lecturer's machine")


@app.command()
def check(
    models: Annotated[list[str], typer.Argument(help="A, B (the newest trained file of that kind) or .keras "
                                                "paths.")],
    data: Annotated[Path | None, typer.Option(help="Folder of labelled chips for the sanity test "
                                              "(an even sample of --samples images).")] = None,
    samples: Annotated[int, typer.Option(min=1, help="How many images of --data to use.")] = 32,
    kind: Annotated[Kind | None, typer.Option(help="A or B (default: from the file name); "
                                              "A adds the feature-map rule.")] = None,
    backend: Annotated[Backend | None, typer.Option(help="Keras backend to load with (default: KERAS_BACKEND or "
                                                    "tensorflow).")] = None,
    keras_versions: KerasOpt = None,
    project: Annotated[str, typer.Option(help="Runs folder searched for A / B.")] = "runs",
    json_out: JsonOpt = False,
) -> None:
    """Verify the lecturer's contract, on the lecturer's Keras: loads without facekit on this and older Keras
    versions with the same predictions, float32, input, outputs, gender unit, A's map rule."""
    from facekit.check import check_model, sample_images
    from facekit.inference import resolve_model

    versions = _keras_versions(keras_versions)
    if data is not None and not data.is_dir():
        fail(f"{data}: not a directory")
    try:
        images = sample_images(data, samples) if data else []
    except ValueError as exc:
        fail(str(exc))
    try:
        paths = [resolve_model(m, project) for m in models]
    except FileNotFoundError as exc:
        fail(str(exc))
    reports = []
    for path in paths:
        try:
            with err_console.status(f"checking {path}", spinner="dots") as spin:
                reports.append(check_model(path, kind.value if kind else None, images, backend=_value(backend),
                                           keras_versions=versions,
                                           status=lambda msg: spin.update(f"check: {msg}")))
        except FileNotFoundError as exc:
            fail(str(exc))
    if json_out:
        print_json([r.to_json() for r in reports])
    else:
        for r in reports:
            _print_check(r)
    if not all(r.passed for r in reports):
        raise typer.Exit(1)


@app.command()
def merge(
    models: Annotated[list[Path], typer.Argument(help="Two or more hand-in files of one kind (e.g. runs with "
                                                 "different --init-seed).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The merged file (a .keras name, e.g. "
                                      "age_gender_B.keras).")],
    output_order: Annotated[OutputOrder | None, typer.Option(help="Order of the two outputs (default "
                                                             "age,gender).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Join several trained models into one hand-in file that averages them (built-in layers only)."""
    from facekit.contract import DEFAULT_OUTPUT_ORDER, hand_in_kind
    from facekit.ensemble import merge_files
    from facekit.export import save_hand_in

    if out.suffix != ".keras":
        fail(f"{out}: the merged file must end in .keras")
    kinds = {k for k in (hand_in_kind(p) for p in models) if k}
    if len(kinds) > 1:
        fail("members of Model A and Model B cannot be merged: Model A must stay a network trained from scratch")
    try:
        with err_console.status(f"merging {len(models)} models", spinner="dots"):
            model = merge_files(models, _value(output_order) or DEFAULT_OUTPUT_ORDER)
            save_hand_in(model, out)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    size = out.stat().st_size / 2**20
    if json_out:
        print_json({"out": str(out), "members": [str(p) for p in models], "megabytes": round(size, 2)})
        return
    console.print(f"[green]merged[/] {len(models)} models into {out} ({size:.1f} MB): age is their mean, "
                  "P(female) the sigmoid of their mean logit", highlight=False)
    console.print(f"next: facekit check {out} --data DIR", highlight=False)


@app.command()
def backbones(json_out: JsonOpt = False) -> None:
    """List the ImageNet backbones `train finetune --backbone` accepts."""
    from dataclasses import asdict

    from facekit.backbones import DEFAULT_BACKBONE, REGISTRY, resolve_weights

    rows = [{**asdict(b), "default": b.name == DEFAULT_BACKBONE, "imagenet_weights": resolve_weights(b, "imagenet")}
            for b in REGISTRY.values()]
    if json_out:
        print_json(rows)
        return
    for r in rows:
        local = "local file" if r["imagenet_weights"] != "imagenet" else "download"
        flag = " (default)" if r["default"] else ""
        console.print(f"{r['name']:18s} keras.applications.{r['builder']}{flag}; ImageNet weights: {local}"
                      + (f"; {r['note']}" if r["note"] else ""), highlight=False)


@app.command()
def doctor(
    model_dir: ModelDirOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """What this machine has and what facekit needs: versions, backend, GPU, model files, OpenCV packages,
    the Keras versions the hand-in check can use; each problem with its fix. Exit 1 if facekit cannot work."""
    from rich.table import Table

    from facekit.doctor import diagnose

    with err_console.status("examining this machine", spinner="dots"):
        report = diagnose(model_dir)
    if json_out:
        print_json({**report, "findings": [f.to_json() for f in report["findings"]]})
    else:
        table = Table(title=f"facekit {report['facekit']} on {report['platform']}")
        for col in ("", "status", "detail", "fix"):
            table.add_column(col, overflow="fold")
        colour = {"ok": "green", "info": "cyan", "warn": "yellow", "fail": "bold red"}
        for f in report["findings"]:
            table.add_row(f.item, f"[{colour[f.status]}]{f.status}[/]", f.detail, f.fix)
        console.print(table)
    if not report["ok"]:
        raise typer.Exit(1)


def _load_models(specs: list[str], project: str):
    from facekit.inference import load_all, resolve_model

    return load_all([resolve_model(s, project) for s in specs])


def _output_stream(output: Path | None):
    """Where records go: stdout (no file, or ``-``), or a file written atomically (complete or absent)."""
    import contextlib
    import sys

    if output is None or str(output) == "-":
        return contextlib.nullcontext(sys.stdout)

    @contextlib.contextmanager
    def atomic_text():
        from facekit.atomic import atomic_path

        with atomic_path(output) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
            yield f

    return atomic_text()


@app.command()
def predict(
    images: Annotated[list[Path], typer.Argument(help="Image files or folders of images.")],
    model: Annotated[list[str] | None, typer.Option("--model", "-m", help="A, B (newest trained file of that "
                                                    "kind under --project) or a .keras path; repeat to compare.")]
    = None,
    annotate: Annotated[Path | None, typer.Option(help="Write annotated copies of the images into this folder.")]
    = None,
    tta: Annotated[bool, typer.Option("--tta", metavar="",
                                      help="Test-time flip averaging at run time (a model trained with "
                                         "the default --tta has it built in: not applied twice).")] = False,
    max_faces: Annotated[int, typer.Option(min=1, help="Most faces to find per image.")] = 20,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", metavar="",
                                            help="Also the images in subfolders of a folder.")] = False,
    thorough: Annotated[bool, typer.Option("--thorough", metavar="",
                                           help="Search every photo twice (with and without a border), as for "
                                           "group photos with faces of very different sizes; slower.")] = False,
    scores: Annotated[bool, typer.Option("--scores", metavar="",
                                         help="Also run the face detector: a confidence score and a detector "
                                         "box per face (without it: the landmarks' extent, no score); about "
                                         "3 ms more per image.")] = False,
    batch_size: Annotated[int, typer.Option(min=1, help="Most faces per forward pass.")] = 32,
    engine: Annotated[Engine, typer.Option(help="What runs the models: litert (each model converted once by "
                                           "Keras and cached; about 2x faster on a CPU), keras, or auto (litert "
                                           "where it runs and agrees with Keras, else keras).")] = Engine("auto"),
    project: Annotated[str, typer.Option(help="Runs folder searched for A / B.")] = "runs",
    model_dir: ModelDirOpt = None,
    json_out: Annotated[bool, typer.Option("--json", metavar="", help="One JSON document with every record "
                                           "and a summary, printed at the end.")] = False,
    jsonl: Annotated[bool, typer.Option("--jsonl", metavar="", help="One JSON record per face and model, "
                                        "streamed a line at a time (for big folders).")] = False,
    csv_out: Annotated[bool, typer.Option("--csv", metavar="", help="The same records as CSV rows, streamed.")]
    = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the records to this file (written "
                                                "atomically) instead of standard output; the format comes from "
                                                "--json/--jsonl/--csv or the file's suffix.")] = None,
) -> None:
    """Age and gender for every face in IMAGES (chips, selfies, group photos, folders).

    --json, --jsonl and --csv write versioned records for scripts (README: "Output for scripts"); progress,
    warnings and the summary line go to standard error, so standard output holds only the records."""
    import time

    from rich.table import Table

    from facekit.contract import INPUT_SIZE
    from facekit.modelfiles import ModelFileError
    from facekit.predict import Predictor, expand_inputs
    from facekit.prediction_records import FORMATS, ModelInfo, RecordWriter, Tally, document_header, records
    from facekit.template import framing_for

    chosen = [f for f, on in (("json", json_out), ("jsonl", jsonl), ("csv", csv_out)) if on]
    if len(chosen) > 1:
        fail(f"choose one output format, not {' and '.join('--' + f for f in chosen)}", 2)
    fmt = chosen[0] if chosen else None
    to_file = output is not None and str(output) != "-"
    if fmt is None and to_file:
        fmt = output.suffix.lower().lstrip(".")
        if fmt not in FORMATS:
            fail(f"{output}: cannot tell the format from the suffix; add --json, --jsonl or --csv", 2)
    elif fmt is None and output is not None:
        fail("--output - needs --json, --jsonl or --csv", 2)
    try:
        files = expand_inputs(images, recursive)
    except (FileNotFoundError, OSError) as exc:
        fail(reason(exc))
    if not files:
        fail(f"no image files in {', '.join(str(p) for p in images)}" + ("" if recursive else
                                                                          " (subfolders need --recursive)"))
    try:
        models = _load_models(model or ["B"], project)
        template, framing_warnings = framing_for([lm.path for lm in models], INPUT_SIZE)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    warnings = [*(lm.note for lm in models if lm.note), *framing_warnings]
    for lm in models:
        if fmt is None:
            console.print(f"model {lm.label}: {lm.path}", highlight=False)
    for w in warnings:
        err_console.print(f"[yellow]warning:[/] {w}", highlight=False)
    infos = [ModelInfo.of(lm) for lm in models]
    tally = Tally()
    results = []  # the text table only; record formats stream
    start = time.perf_counter()
    try:
        with err_console.status("loading the face finder (a model's first use also converts it for LiteRT, "
                                "about 10 s, once)", spinner="dots"):
            predictor = Predictor(models, template, tta=tta, max_faces=max_faces, thorough=thorough,
                                  batch_size=batch_size, model_dir=str(model_dir) if model_dir else None,
                                  annotate_dir=annotate, scores=scores, engine=_value(engine))
        with predictor, _output_stream(output) as stream, progress_bar("predict") as bar:
            for note in predictor.notes:
                err_console.print(f"note: {note}", highlight=False, soft_wrap=True)
            writer = RecordWriter(stream, fmt, document_header(infos, template.digest(), warnings)) if fmt else None
            for res in predictor.stream(files):
                tally.add(res)
                tally.seconds = time.perf_counter() - start
                if res.error:
                    err_console.print(f"[yellow]skipped:[/] {res.error}", highlight=False, soft_wrap=True)
                if writer:
                    writer.write(records(res, infos))
                else:
                    results.append(res)
                bar(tally.images, len(files), f"{tally.faces_per_second:.1f} faces/s")
            if writer:
                writer.close(tally.to_json())
    except (ModelFileError, ValueError, OSError) as exc:
        fail(reason(exc))
    if fmt is None:
        table = Table(show_lines=False)
        table.add_column("image")
        table.add_column("face", justify="right")
        table.add_column("box x0,y0,x1,y1")
        for lm in models:
            table.add_column(f"{lm.label}: age", justify="right")
            table.add_column(f"{lm.label}: gender (p)")
        for r in results:
            for i, f in enumerate(r.faces):
                cells = []
                for lm in models:
                    p = f.predictions[lm.label]
                    cells += [f"{p['age']:.1f}", f"{p['gender']} ({max(p['p_female'], 1 - p['p_female']):.2f})"]
                table.add_row(Path(r.path).name if i == 0 else "", str(i + 1),
                              ",".join(f"{v:.0f}" for v in f.box), *cells)
        if table.row_count:
            console.print(table)
        for r in results:
            if r.annotated:
                console.print(f"annotated: {r.annotated}", highlight=False)
    err_console.print(tally.line(), highlight=False)
    if to_file:
        err_console.print(f"wrote {output}", highlight=False)
    if not tally.faces:
        raise typer.Exit(1)


@app.command()
def evaluate(
    models: Annotated[list[str], typer.Argument(help="A, B or .keras paths.")],
    data: Annotated[Path, typer.Option(help="Labelled folder (UTKFace names).")],
    tta: Annotated[bool, typer.Option("--tta", metavar="",
                                      help="Also report test-time flip averaging at run time.")] = False,
    plots: Annotated[Path | None, typer.Option(help="Write scatter, MAE-by-band and worst-case sheets here.")]
    = None,
    worst: Annotated[int, typer.Option(help="How many worst predictions to list.")] = 10,
    split: Annotated[Split, typer.Option(help="all, or the val / train part of the models' run (its "
                                         "split.json): score held-out images.")] = Split("all"),
    val_split: Annotated[float, typer.Option(help="Validation fraction for --split.")] = 0.2,
    seed: Annotated[int, typer.Option(help="Split seed for --split.")] = 0,
    run: Annotated[Path | None, typer.Option(help="With --split: the run folder whose recorded split to use "
                                             "(default: the models' own run folders).")] = None,
    project: Annotated[str, typer.Option(help="Runs folder searched for A / B.")] = "runs",
    json_out: JsonOpt = False,
) -> None:
    """Score models the way the lecturer does: cv2.imread / 255, no alignment, MAE and gender accuracy.

    --split val scores exactly the images the models' run held out (its split.json); a model outside a
    run folder falls back to re-splitting the folder by the course template."""
    from rich.table import Table

    from facekit.evaluate import evaluate as run_evaluate
    from facekit.evaluate import held_out_names, write_plots
    from facekit.labelled import load_labelled

    try:
        loaded = _load_models(models, project)
        names, split_info = held_out_names([lm.path for lm in loaded], split.value, run)
        with progress_bar(f"read {data.name}", quiet=json_out) as bar:
            labelled = load_labelled(data, progress=bar, split=split.value, val_split=val_split, seed=seed, names=names)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    report, preds = run_evaluate(loaded, labelled, tta=tta, worst=worst)
    if split_info:
        report["split"] = {"part": split.value, **split_info}
        if "warning" in split_info:
            report["warnings"].append(split_info["warning"])
        if split_info.get("val_twins_in_train"):
            report["warnings"].append(f"{split_info['val_twins_in_train']} of these validation images have a "
                                      "pixel-identical copy among the training images (UTKFace duplicates)")
    if plots:
        try:
            report["plots"] = [str(p) for p in write_plots(report, preds, labelled, plots)]
        except OSError as exc:
            fail(f"--plots: {reason(exc)}")
    if json_out:
        print_json(report)
        return
    for w in report["warnings"]:
        console.print(f"[yellow]warning:[/] {w}", highlight=False)
    if report["rejected"]:
        console.print(f"{len(report['rejected'])} files not scored (name not labelled):", highlight=False)
        for r in report["rejected"]:
            console.print(f"  {r['file']}: {r['detail']}", markup=False, highlight=False)
    for u in report["unreadable"]:
        console.print(f"  unreadable: {u}", markup=False, highlight=False)
    for d in report["damaged"]:
        console.print(f"  damaged (scored as cv2 decodes it): {d}", markup=False, highlight=False)
    ms = report["models"]
    table = Table(title=f"{report['images']} images from {data}")
    table.add_column("")
    for label in ms:
        table.add_column(label, justify="right")
    table.add_row("age MAE", *[f"{m['mae']:.2f}" for m in ms.values()])
    table.add_row("gender accuracy", *[f"{m['gender_accuracy']:.1%}" for m in ms.values()])
    if tta:
        table.add_row("age MAE, flip TTA", *[f"{m['tta']['mae']:.2f}" for m in ms.values()])
        table.add_row("gender accuracy, flip TTA", *[f"{m['tta']['gender_accuracy']:.1%}" for m in ms.values()])
    from facekit.labels import AGE_BANDS

    for band in AGE_BANDS:
        vals = [m["mae_by_band"].get(band) for m in ms.values()]
        if any(vals):
            table.add_row(f"MAE {band} (n)", *[f"{v['mae']:.2f} ({v['n']})" if v else "-" for v in vals])
    for g in ("male", "female"):
        vals = [m["accuracy_by_gender"].get(g) for m in ms.values()]
        table.add_row(f"accuracy {g}", *[f"{v['accuracy']:.1%}" if v else "-" for v in vals])
    cells = []
    for m in ms.values():
        (mm, mf), (fm, ff) = m["confusion"]["matrix"]
        cells.append(f"{mm}/{mf} | {fm}/{ff}")
    table.add_row("confusion: true M as M/F | true F as M/F", *cells)
    console.print(table)
    for label, m in ms.items():
        console.print(f"worst predictions of {label}:")
        for w in m["worst"]:
            console.print(f"  {w['file']}: true {w['true_age']} {'F' if w['true_gender'] else 'M'}, "
                          f"predicted {w['pred_age']:.1f} (p female {w['p_female']:.2f})", highlight=False)
    for p in report.get("plots", []):
        console.print(f"plot: {p}", highlight=False)


def main() -> None:
    import signal
    import sys

    # SIGTERM (a closed terminal, `kill`, a CI timeout) unwinds like Ctrl-C does, so every atomic write removes
    # its temporary file instead of leaving it behind.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    signal.signal(signal.SIGINT, interrupt_once)
    _PROGRAM["filter_logs"] = True
    app()


if __name__ == "__main__":  # python -m facekit_cli.main, where the facekit script is not installed
    main()
