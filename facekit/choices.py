"""The values of each choice option (augment, mix, precision, split, backend, engine, cache mode, validation
images, Model A's trunk, the monitor), in one light module.

The library modules that implement the choices import them from here, and the
CLI lists them in its help and refuses anything else, without importing
TensorFlow or albumentations to do so.
"""

from __future__ import annotations

AUGMENT_STRENGTHS = ("none", "light", "default", "strong")
MIXES = ("none", "mixup", "cutmix")
PRECISIONS = ("auto", "mixed", "float32")  # auto: mixed_float16 on a GPU, float32 on a CPU
SPLITS = ("all", "train", "val")
BACKENDS = ("tensorflow", "jax", "torch")
ENGINES = ("auto", "litert", "keras")  # predict: auto = LiteRT where it runs and agrees with Keras, else Keras
CACHE_MODES = ("auto", "memory", "stream")  # train: every crop in memory, or each batch read from the cache
# train: validate on the cache's aligned crops, or on the held-out files read as the lecturer reads them
VAL_IMAGES = ("crops", "raw")
SCRATCH_ARCHS = ("plain", "residual")
# train: the validation figure that picks the hand-in epoch and drives early stopping (facekit.engine.selection)
MONITORS = ("val_age_mae", "val_score")  # Model A's trunk: VGG-style, or ResNet-style with a strided stem
