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
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from facekit.contract import CHECK_KERAS, DEFAULT_OUTPUT_ORDER, HAND_IN_NAMES, INPUT_SIZE, check_output_order
from facekit.model.backbones import DEFAULT_BACKBONE

TASKS = tuple(HAND_IN_NAMES)
TUPLES = ("widths", "check_keras", "teachers")  # TrainConfig fields that JSON stores as lists


@dataclass
class TrainConfig:
    task: str = "scratch"
    cache: str = "cache/train_val.h5"
    epochs: int = 40
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_epochs: int = 2
    sigma: float = 2.0  # width of the Gaussian age distribution, years
    label_smoothing: float = 0.05
    age_weight: float = 1.0
    gender_weight: float = 1.0
    augment: str = "default"
    val_split: float = 0.2
    seed: int = 0  # the split's seed (0: the course template's split); also initialisation unless init_seed is set
    init_seed: int | None = None  # weights, shuffling and augmentation only, so seeds can vary on a fixed split
    full: bool = False  # train on everything (no validation) for exactly `epochs`
    val_images: str = "crops"  # or "raw": the held-out files as the lecturer reads them (facekit.data.labelled)
    raw_dir: str | None = None  # where the raw files are (default: the folder the cache was built from)
    patience: int = 12  # early stopping on `monitor`; 0 disables (Model B's default)
    monitor: str = "val_age_mae"  # picks the hand-in epoch; val_score weighs gender too (B's; facekit.engine.selection)
    ema: bool = False
    ema_momentum: float | None = None  # None: a half-life of one epoch
    mix: str = "none"  # none, mixup or cutmix
    mix_alpha: float | None = None  # Beta(alpha, alpha) mixing weight; None: 0.2 for mixup, 1.0 for cutmix
    mean_variance: bool = False  # add the mean-variance age loss (Pan et al., 2018)
    tta: bool = True  # build flip averaging into the exported graph (measured: B 5.85 -> 5.67 MAE)
    teachers: tuple[str, ...] = ()  # distil from these trained .keras files (their mean blended into the targets)
    distill_weight: float = 0.5  # share of the teachers in each target
    dropout: float = 0.3
    hidden: int = 256
    widths: tuple[int, ...] = (32, 64, 128, 256, 384)  # Model A's five stages
    arch: str = "plain"  # Model A's trunk (choices.SCRATCH_ARCHS); for_task("scratch") picks residual
    backbone: str = DEFAULT_BACKBONE
    weights: str = "imagenet"
    internal_size: int = INPUT_SIZE
    freeze_epochs: int = 0
    output_order: str = DEFAULT_OUTPUT_ORDER
    precision: str = "auto"
    cache_mode: str = "auto"  # memory, stream, or auto: memory when the crops fit (cache.choose_mode)
    devices: str = "1"  # "all" or a number: data parallel over that many devices (facekit.engine.distribute)
    check_keras: tuple[str, ...] = CHECK_KERAS  # Keras versions `facekit check` loads the hand-in file with
    workers: int = 4  # loader threads
    limit: int | None = None  # use a random subset of this many cached images (quick runs, tests)
    steps_per_epoch: int | None = None  # cap batches per epoch (quick runs, tests)
    model_dir: str | None = None
    project: str = "runs"
    name: str | None = None

    @classmethod
    def for_task(cls, task: str, **overrides: Any) -> TrainConfig:
        base: dict[str, Any] = {"task": task}
        if task == "scratch":
            # Residual trunk: 5.41 / 5.58 / 5.46 MAE, 92.3 / 90.4 / 91.6 % over 3 seeds at full length
            # (results/accuracy-residual*.md), against the plain trunk's 6.69 / 87.9 % at half length; 2.4x faster.
            # 60 epochs: 5.26 / 5.40 / 5.33 MAE, 91.9 / 92.5 / 92.2 % over 3 seeds on the held-out raw chips,
            # against 5.41 / 5.58 / 5.46, 92.3 / 90.4 / 91.6 % at 40, every one of which was still improving at
            # its last epoch (results/accuracy-long*.md).
            base.update(arch="residual", epochs=60)
        if task == "finetune":
            # 160 px inside: -0.24 MAE, +0.9 % over 2 seeds in the 10-epoch ablation (results/ablation-cpu10.md).
            # All 40 epochs, the kept one chosen on age and gender: patience 12 on age MAE alone averaged
            # 5.54 MAE / 87.0 % over 3 seeds, all epochs 5.38 / 91.2 %, and seed 2 kept an epoch with gender
            # dipped both times (results/accuracy-patience0-seed2.md, facekit.engine.selection).
            # EMA of the weights (half-life one epoch): 5.33 / 5.38 / 5.27 MAE, 93.3 / 92.8 / 93.7 % over 3
            # seeds on the held-out raw chips, against 5.45 / 5.36 / 5.44, 92.7 / 91.9 / 92.8 % without
            # (results/accuracy-ema*.md).
            base.update(lr=5e-4, hidden=0, internal_size=160, patience=0, monitor="val_score", ema=True)
        base.update({k: v for k, v in overrides.items() if v is not None})
        cfg = cls(**base)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Fail on a bad option before any data is read or model built."""
        from facekit.choices import AUGMENT_STRENGTHS as STRENGTHS
        from facekit.choices import CACHE_MODES, MIXES, MONITORS, PRECISIONS, SCRATCH_ARCHS, VAL_IMAGES
        from facekit.model.backbones import get_backbone

        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.task == "finetune":
            get_backbone(self.backbone)
        if self.arch not in SCRATCH_ARCHS:
            raise ValueError(f"arch must be one of {', '.join(SCRATCH_ARCHS)}, got {self.arch!r}")
        if self.task == "finetune" and self.arch != "plain":
            raise ValueError("arch picks Model A's trunk; Model B's architecture is its backbone")
        if self.val_images not in VAL_IMAGES:
            raise ValueError(f"val images must be one of {', '.join(VAL_IMAGES)}, got {self.val_images!r}")
        if self.full and self.val_images != "crops":
            raise ValueError("--val-images raw picks what validation reads, and --full holds nothing out")
        if self.raw_dir is not None and not Path(self.raw_dir).is_dir():
            raise ValueError(f"{self.raw_dir}: raw folder not found (--raw-dir names the folder prep read)")
        if self.monitor not in MONITORS:
            raise ValueError(f"monitor must be one of {', '.join(MONITORS)}, got {self.monitor!r}")
        if self.mix not in MIXES:
            raise ValueError(f"mix must be one of {', '.join(MIXES)}, got {self.mix!r}")
        if not 0.0 <= self.distill_weight <= 1.0:
            raise ValueError(f"distill weight must be in [0, 1], got {self.distill_weight}")
        for teacher in self.teachers:
            if not Path(teacher).is_file():
                raise ValueError(f"{teacher}: teacher model not found")
        if len(set(self.teachers)) != len(self.teachers):
            raise ValueError("the same teacher is named twice: an ensemble of teachers needs different runs")
        if self.augment not in STRENGTHS:
            raise ValueError(f"augment must be one of {', '.join(STRENGTHS)}, got {self.augment!r}")
        check_output_order(self.output_order)
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        from facekit.engine.distribute import parse_devices

        parse_devices(self.devices)
        if self.cache_mode not in CACHE_MODES:
            raise ValueError(f"cache mode must be one of {', '.join(CACHE_MODES)}, got {self.cache_mode!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch size must be at least 1")
        if not 0.0 <= self.val_split < 1.0:
            raise ValueError(f"val split must be in [0, 1), got {self.val_split}")
        positive = {"limit": self.limit, "workers": self.workers, "steps per epoch": self.steps_per_epoch,
                    "internal size": self.internal_size}
        for what, value in positive.items():
            if value is not None and value < 1:  # --limit 0 once meant "everything", silently
                raise ValueError(f"{what} must be at least 1, got {value}")
        if not 0 <= self.freeze_epochs <= self.epochs:
            raise ValueError(f"freeze epochs must be between 0 and the {self.epochs} epochs, got {self.freeze_epochs}")
        if self.lr <= 0 or self.sigma <= 0 or self.patience < 0 or self.weight_decay < 0:
            raise ValueError("lr and sigma must be positive, patience and weight decay not negative")
        if self.name is not None and (not self.name or self.name in (".", "..") or Path(self.name).name != self.name):
            raise ValueError(f"run name {self.name!r} must be a plain folder name (no path), so the run stays "
                             f"under {self.project}/{self.task}/")
        if self.task == "finetune" and self.weights.lower() not in ("imagenet", "none") \
                and not Path(self.weights).is_file():
            raise ValueError(f"{self.weights}: weights file not found (use imagenet, none or a path to an .h5 file)")
        from facekit.contract.keras_envs import parse_specs

        parse_specs(",".join(self.check_keras))

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
