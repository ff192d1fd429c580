"""Training configuration and the default recipe for each model.

Defaults follow the measurements in ../shared/docs/findings.md (validation
split of train_val, lecturer-style input): label distribution learning for age
(Gaussian sigma 2), gender BCE with label smoothing 0.05, AdamW with cosine
decay, 40 epochs (60 for Model A), CPU-side augmentation, and for Model B a backbone that
is trainable from the start (freeze-then-unfreeze reached only 9.0 MAE / 82 %
against 5.61 / 91.4 % for full fine-tuning at 5e-4).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from facekit.choices import AUGMENT_STRENGTHS, CACHE_MODES, MIXES, MONITORS, PRECISIONS, SCRATCH_ARCHS, VAL_IMAGES
from facekit.contract import (
    CHECK_KERAS,
    DEFAULT_OUTPUT_ORDER,
    HAND_IN_NAMES,
    INPUT_SIZE,
    OUTPUT_ORDERS,
    check_output_order,
)
from facekit.contract.keras_envs import parse_specs
from facekit.engine.selection import GENDER_POINT_YEARS
from facekit.model.backbones import DEFAULT_BACKBONE, get_backbone
from facekit.utils.numbers import check_range

TASKS = tuple(HAND_IN_NAMES)
TUPLES = ("widths", "check_keras", "teachers")  # TrainConfig fields that JSON stores as lists
A_ONLY, B_ONLY = "Model A only (train scratch)", "Model B only (train finetune)"
SHARED = "<the field's default>"  # an Option's per-model default that is not set


@dataclass(frozen=True)
class Option:
    """One training option, declared once: its help, its range or choices and each model's default.

    The ``facekit train`` options, ``for_task``, the value checks and the option
    table in docs/train.md are all generated from these declarations, so a new
    lever is one field.
    """

    help: str
    scratch: Any = SHARED  # Model A's default, where it differs from the field's
    finetune: Any = SHARED  # Model B's default, where it differs from the field's
    low: float | None = None  # smallest value allowed
    high: float | None = None  # largest value allowed
    above: float | None = None  # values must be greater than this
    below: float | None = None  # values must be less than this
    choices: tuple[str, ...] | None = None
    flag: str | None = None  # the CLI's spelling, where it is not --field-name
    cli: bool = True  # False: set through the library or benchmarks' --set only
    panel: str | None = None  # A_ONLY or B_ONLY

    def spelled(self, name: str) -> str:
        """How the command line spells the field ``name``: its declared flag, else --field-name."""
        return self.flag or "--" + name.replace("_", "-")

    def default_for(self, task: str, shared: Any) -> Any:
        own = self.scratch if task == "scratch" else self.finetune
        return shared if own is SHARED else own


def flag(name: str) -> str:
    """A TrainConfig field as the command line spells it (messages name options the way users type them)."""
    return TrainConfig.option_of(name).spelled(name)


def option(default: Any, help: str, **kw: Any) -> Any:
    """A TrainConfig field with its Option; tuples stay immutable defaults."""
    meta = {"option": Option(help, **kw)}
    if isinstance(default, (list, dict, set)):
        raise TypeError("mutable defaults are not allowed; use a tuple")
    return field(default=default, metadata=meta)


def check_value(name: str, value: Any, opt: Option) -> None:
    """Refuse a value outside its option's range or choices: the one check the CLI's parser and TrainConfig share.

    NaN and infinities are refused for every bounded number (a NaN compares false with every bound, so a
    plain range check lets it through).
    """
    if value is None:
        return
    what = name.replace("_", " ")
    if opt.choices is not None:
        if value not in opt.choices:
            raise ValueError(f"{what} must be one of {', '.join(opt.choices)}, got {value!r}")
        return
    check_range(what, value, low=opt.low, high=opt.high, above=opt.above, below=opt.below)


def parse_devices(text: str | int) -> int | None:
    """``all`` -> None (every device), a positive number -> that many; anything else is refused."""
    if str(text).strip().lower() == "all":
        return None
    try:
        n = int(str(text))
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"--devices takes 'all' or a positive number, got {text!r}")
    return n


@dataclass
class TrainConfig:
    """Every training option. Field defaults are shared by both models; ``for_task`` applies each model's own."""

    task: str = option("scratch", "scratch: Model A, a CNN from random weights; finetune: Model B, an ImageNet "
                       "backbone.", choices=TASKS, cli=False)
    cache: str = option("cache/train_val.h5", "HDF5 cache from `facekit prep`.")
    # Model A, 60 epochs: 5.26 / 5.40 / 5.33 MAE, 91.9 / 92.5 / 92.2 % over 3 seeds on the held-out raw chips,
    # against 5.41 / 5.58 / 5.46, 92.3 / 90.4 / 91.6 % at 40, every one of which was still improving at its last
    # epoch (results/accuracy-long*.md).
    epochs: int = option(40, "Epochs.", scratch=60, low=1)
    batch_size: int = option(64, "Batch size (per device with --devices).", low=1)
    lr: float = option(1e-3, "Peak learning rate.", finetune=5e-4, above=0)
    weight_decay: float = option(1e-4, "AdamW weight decay.", low=0)
    warmup_epochs: int = option(2, "Epochs of linear learning-rate warm-up.", low=0, cli=False)
    sigma: float = option(2.0, "Width in years of the Gaussian age target.", above=0)
    label_smoothing: float = option(0.05, "Label smoothing of the gender target.", low=0, below=1, cli=False)
    age_weight: float = option(1.0, "Weight of the age loss.", low=0, cli=False)
    gender_weight: float = option(1.0, "Weight of the gender loss.", low=0, cli=False)
    augment: str = option("default", "Augmentation strength.", choices=AUGMENT_STRENGTHS)
    val_split: float = option(0.2, "Validation fraction of the template split.", low=0, below=1)
    seed: int = option(0, "Split and training seed (0: the course template's split).")
    init_seed: int | None = option(None, "Seed for weights, shuffling and augmentation only (default: --seed), to "
                                   "repeat runs on one split.")
    full: bool = option(False, "Train on all images for exactly --epochs (take the epoch count from a validation "
                        "run's metrics.json).")
    val_images: str = option("crops", "Validate on the cache's aligned crops or on the held-out files themselves, "
                             "read as the lecturer reads them (raw; facekit.data.labelled).", choices=VAL_IMAGES)
    raw_dir: str | None = option(None, "Where --val-images raw finds the files (default: the folder the cache "
                                 "was built from).")
    # Model B trains all 40 epochs, the kept one chosen on age and gender: patience 12 on age MAE alone averaged
    # 5.54 MAE / 87.0 % over 3 seeds, all epochs 5.38 / 91.2 %, and seed 2 kept an epoch with gender dipped both
    # times (results/accuracy-patience0-seed2.md, facekit.engine.selection).
    patience: int = option(12, "Early-stopping patience in epochs (0: off).", finetune=0, low=0)
    snapshots: int = option(1, "Snapshot ensemble: split the epochs into this many cosine cycles, each restarting "
                            "the schedule, and hand in the merge of every cycle's last epoch (1: one model; more "
                            "turns early stopping off).", low=1)
    monitor: str = option("val_age_mae", "What picks the hand-in epoch and drives early stopping: val_age_mae, "
                          f"or val_score, age MAE plus {GENDER_POINT_YEARS} per point of gender error.",
                          finetune="val_score", choices=MONITORS)
    # Model B, EMA of the weights (half-life one epoch): 5.33 / 5.38 / 5.27 MAE, 93.3 / 92.8 / 93.7 % over 3 seeds
    # on the held-out raw chips, against 5.45 / 5.36 / 5.44, 92.7 / 91.9 / 92.8 % without (results/accuracy-ema*.md).
    ema: bool = option(False, "Validate and export an exponential moving average of the weights.", finetune=True)
    ema_momentum: float | None = option(None, "EMA momentum per step (default: a half-life of one epoch).",
                                        above=0, below=1)
    mix: str = option("none", "Batch mixing.", choices=MIXES)
    mix_alpha: float | None = option(None, "Beta(a, a) for --mix (default 0.2 mixup, 1.0 cutmix).", above=0)
    race_weight: float = option(0.0, "Weight of an auxiliary race loss (UTKFace names carry the label): a 5-way "
                                "head on the same features, for training only; the exported file keeps its two "
                                "outputs (0: no race head).", low=0)
    mean_variance: bool = option(False, "Add the mean-variance age loss (Pan et al., 2018).")
    tta: bool = option(True, "Test-time flip averaging, built into the exported file (built-in layers; twice the "
                       "inference cost; measured: B 5.85 -> 5.67 MAE).")
    teachers: tuple[str, ...] = option((), "Distil from this trained model (e.g. Model B into A; repeat for an "
                                       "ensemble: their mean); it must come from the same split.", flag="--teacher")
    distill_weight: float = option(0.5, "Share of the teachers in the targets.", low=0, high=1)
    dropout: float = option(0.3, "Dropout before the heads.", low=0, below=1, cli=False)
    hidden: int = option(256, "Units of the hidden layer before the heads (0: none).", finetune=0, low=0, cli=False)
    widths: tuple[int, ...] = option((32, 64, 128, 256, 384), "Model A's five stage widths.", cli=False)
    # Residual trunk: 5.41 / 5.58 / 5.46 MAE, 92.3 / 90.4 / 91.6 % over 3 seeds at full length
    # (results/accuracy-residual*.md), against the plain trunk's 6.69 / 87.9 % at half length; 2.4x faster.
    arch: str = option("plain", "residual: a strided stem and residual blocks; plain: VGG-style, 2 convolutions a "
                       "stage, about 2.4x slower.", scratch="residual", choices=SCRATCH_ARCHS, panel=A_ONLY)
    backbone: str = option(DEFAULT_BACKBONE, "Backbone name (see `facekit backbones`).", panel=B_ONLY)
    weights: str = option("imagenet", "imagenet, none or a weights file.", panel=B_ONLY)
    # 160 px inside: -0.24 MAE, +0.9 % over 2 seeds in the 10-epoch ablation (results/ablation-cpu10.md).
    internal_size: int = option(INPUT_SIZE, "Resolution inside the model (the input stays 128).", finetune=160,
                                low=1, panel=B_ONLY)
    freeze_epochs: int = option(0, "Epochs with the backbone frozen first.", low=0, panel=B_ONLY)
    backbone_lr: float = option(1.0, "The backbone's learning rate as a fraction of the heads' (discriminative "
                                "rates; 1: one rate for all).", above=0, high=1, panel=B_ONLY)
    layer_decay: float = option(1.0, "Layer-wise learning-rate decay inside the backbone: each layer with a kernel "
                                "trains at this factor times the rate of the one above it, the top one at "
                                "--backbone-lr (1: no decay).", above=0, high=1, panel=B_ONLY)
    output_order: str = option(DEFAULT_OUTPUT_ORDER, "Order of the two outputs.", choices=OUTPUT_ORDERS)
    precision: str = option("auto", "auto: mixed_float16 on a GPU, float32 on a CPU.", choices=PRECISIONS)
    cache_mode: str = option("auto", "memory: every crop in memory; stream: each batch read from the cache (flat "
                             "memory, any size); auto: memory when the crops fit.", choices=CACHE_MODES)
    devices: str = option("1", "all, or how many devices to train on (data parallel); --batch-size is per device "
                          "and the learning rate scales with the count (facekit.engine.distribute).")
    check_keras: tuple[str, ...] = option(CHECK_KERAS, "Keras versions that check loads the file with ('none': "
                                          "this Keras only).")
    workers: int = option(4, "Parallel workers: threads that load and augment batches.", low=1)
    limit: int | None = option(None, "Use a random subset of N cached images.", low=1)
    steps_per_epoch: int | None = option(None, "Cap batches per epoch (quick trials).", low=1, flag="--steps")
    eager: bool = option(False, "Run each step op by op instead of compiling it (a TensorFlow graph, a JAX jit): "
                         "on TensorFlow a run of a few steps, like README's smoke run, finishes sooner (Model B, 4 "
                         "steps on a CPU: 14 s instead of 46 s); a longer run, or any run on JAX, trains slower. "
                         "Also for debugging.")
    model_dir: str | None = option(None, "Directory with local model files (mediapipe/, keras/); default: "
                                   "$FACEKIT_MODEL_DIR, else download into ~/.cache/facekit/models.")
    project: str = option("runs", "Folder of runs.")
    name: str | None = option(None, "Run name (default exp, exp2, ...).")

    @classmethod
    def options(cls) -> list[tuple[str, Any, Option]]:
        """(field name, shared default, its Option) for every field, in declaration order."""
        return [(f.name, f.default, f.metadata["option"]) for f in fields(cls)]

    @classmethod
    def option_of(cls, name: str) -> Option:
        return next(opt for field_name, _, opt in cls.options() if field_name == name)

    @classmethod
    def for_task(cls, task: str, **overrides: Any) -> TrainConfig:
        """The task's own defaults (each field's declaration), then ``overrides`` that are not None."""
        base: dict[str, Any] = {name: opt.default_for(task, default) for name, default, opt in cls.options()
                                if opt.default_for(task, default) is not default}
        base["task"] = task
        base.update({k: v for k, v in overrides.items() if v is not None})
        cfg = cls(**base)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Fail on a bad option before any data is read or model built."""
        for name, _, opt in self.options():
            check_value(name, getattr(self, name), opt)
        if self.task == "finetune":
            get_backbone(self.backbone)
        if self.task == "finetune" and self.arch != "plain":
            raise ValueError("arch picks Model A's trunk; Model B's architecture is its backbone")
        if self.full and self.val_images != "crops":
            raise ValueError("--val-images raw picks what validation reads, and --full holds nothing out")
        if self.raw_dir is not None and not Path(self.raw_dir).is_dir():
            raise ValueError(f"{self.raw_dir}: raw folder not found (--raw-dir names the folder prep read)")
        for teacher in self.teachers:
            if not Path(teacher).is_file():
                raise ValueError(f"{teacher}: teacher model not found")
        if len(set(self.teachers)) != len(self.teachers):
            raise ValueError("the same teacher is named twice: an ensemble of teachers needs different runs")
        check_output_order(self.output_order)
        parse_devices(self.devices)
        if not 0 <= self.freeze_epochs <= self.epochs:
            raise ValueError(f"freeze epochs must be between 0 and the {self.epochs} epochs, got {self.freeze_epochs}")
        if self.snapshots > self.epochs - self.freeze_epochs:
            raise ValueError(f"{self.snapshots} snapshots need at least one epoch per cycle, and the run trains "
                             f"{self.epochs - self.freeze_epochs} after its frozen ones")
        if self.name is not None and (not self.name or self.name in (".", "..") or Path(self.name).name != self.name):
            raise ValueError(f"run name {self.name!r} must be a plain folder name (no path), so the run stays "
                             f"under {self.project}/{self.task}/")
        if self.task == "finetune" and self.weights.lower() not in ("imagenet", "none") \
                and not Path(self.weights).is_file():
            raise ValueError(f"{self.weights}: weights file not found (use imagenet, none or a path to an .h5 file)")
        parse_specs(",".join(self.check_keras))

    @property
    def stop_patience(self) -> int:
        """The patience early stopping uses: none in a snapshot run, whose every restart raises the loss."""
        return 0 if self.snapshots > 1 else self.patience

    @property
    def run_seed(self) -> int:
        return self.seed if self.init_seed is None else self.init_seed

    @property
    def export_name(self) -> str:
        return HAND_IN_NAMES[self.task]

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for key in TUPLES:
            d[key] = list(d[key])
        return d

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        raw = json.loads(Path(path).read_text())
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in raw.items() if k in known}
        data.setdefault("tta", False)  # runs from before the option existed exported without it
        if raw.get("teacher"):  # runs from before several teachers were allowed
            data["teachers"] = [raw["teacher"]]
        return cls(**data)

    def __post_init__(self) -> None:
        # JSON (args.json, benchmarks' --set) brings lists and a lone teacher as text; one form from here on.
        if isinstance(self.teachers, (str, Path)):
            self.teachers = (self.teachers,)
        for key in TUPLES:
            setattr(self, key, tuple(str(v) if key == "teachers" else v for v in getattr(self, key)))
