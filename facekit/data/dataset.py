"""Batches for training: cached crops in, exactly the exported model's input out.

The model takes what the lecturer's code feeds it, ``cv2.imread(path) / 255.0``:
float32, BGR, values in [0, 1]. The cache stores RGB uint8, so the loader
augments in uint8 RGB, then flips channels and scales. Targets carry the age
in years, a Gaussian age distribution (label distribution learning) and gender.
"""

from __future__ import annotations

import copy
import threading
from typing import Any

import albumentations as A
import keras
import numpy as np

from facekit.choices import MIXES
from facekit.contract import AGE_DISTRIBUTION, N_AGES, N_RACES, RACE, rgb_to_input

DEFAULT_MIX_ALPHA = {"mixup": 0.2, "cutmix": 1.0}
AUGMENT_STREAM = 1  # keeps a batch's augmentation seed apart from its mixing seed, both from (seed, epoch, batch)


def age_distributions(ages: np.ndarray, sigma: float) -> np.ndarray:
    """Soft targets: a normalised Gaussian over 0..116 around each age."""
    grid = np.arange(N_AGES, dtype=np.float32)
    d = np.exp(-0.5 * ((grid[None, :] - ages[:, None].astype(np.float32)) / sigma) ** 2)
    return (d / d.sum(axis=1, keepdims=True)).astype(np.float32)


def mix_batch(x: np.ndarray, targets: dict[str, np.ndarray], mix: str, alpha: float,
              rng: np.random.Generator) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Mixup or CutMix of a batch with a shuffled copy of itself; every target is mixed by the same weight.

    The age distribution is mixed as a distribution, so the model learns a
    two-peaked target rather than the average age of two faces; the ``age``
    target (metrics only) is the mixed mean.
    """
    lam = float(rng.beta(alpha, alpha))
    perm = rng.permutation(len(x))
    if mix == "mixup":
        x = lam * x + (1.0 - lam) * x[perm]
    else:
        h, w = x.shape[1:3]
        ch, cw = int(round(h * np.sqrt(1.0 - lam))), int(round(w * np.sqrt(1.0 - lam)))
        cy, cx = int(rng.integers(h)), int(rng.integers(w))
        y0, y1 = max(cy - ch // 2, 0), min(cy + (ch + 1) // 2, h)
        x0, x1 = max(cx - cw // 2, 0), min(cx + (cw + 1) // 2, w)
        x = x.copy()
        x[:, y0:y1, x0:x1] = x[perm, y0:y1, x0:x1]
        lam = 1.0 - (y1 - y0) * (x1 - x0) / (h * w)  # the pasted area actually used
    return x.astype(np.float32), {k: (lam * v + (1.0 - lam) * v[perm]).astype(np.float32)
                                  for k, v in targets.items()}


class FaceBatches(keras.utils.PyDataset):
    """A Keras PyDataset over in-memory crops; worker threads run the augmentation."""

    def __init__(
        self,
        images: np.ndarray,
        ages: np.ndarray,
        genders: np.ndarray,
        batch_size: int = 64,
        augment: A.Compose | None = None,
        shuffle: bool = False,
        sigma: float = 2.0,
        seed: int = 0,
        workers: int = 1,
        steps: int | None = None,
        mix: str = "none",
        mix_alpha: float | None = None,
        soft: tuple[np.ndarray, np.ndarray] | None = None,
        soft_weight: float = 0.5,
        multiple_of: int = 1,
        races: np.ndarray | None = None,
    ) -> None:
        """``multiple_of``: every batch's size must divide by it (the devices a batch is split over).
        Shuffled (training) batches drop the few images past the last multiple, different ones each
        epoch; unshuffled (validation) ones pad the last batch with weight-0 copies, so every image
        counts once in the (weighted) metrics; Keras divides a loss by the whole batch, so the
        validation loss is low by at most (devices - 1) / images. ``races``: each image's race label, for a
        model with the auxiliary race head (one-hot targets, so mixing blends them as it blends the rest)."""
        super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=max(4, 2 * workers))
        if not len(images) == len(ages) == len(genders):
            raise ValueError("images, ages and genders differ in length")
        if len(images) == 0:
            raise ValueError("no images to batch")
        if mix not in MIXES:
            raise ValueError(f"mix must be one of {', '.join(MIXES)}, got {mix!r}")
        self.mix = mix
        if races is not None and len(races) != len(images):
            raise ValueError("races and images differ in length")
        self.races = races
        if soft is not None and not len(soft[0]) == len(soft[1]) == len(images):
            raise ValueError("soft targets and images differ in length")
        self.soft, self.soft_weight = soft, soft_weight  # a teacher's (age distribution, P(female)) per image
        self.mix_alpha = DEFAULT_MIX_ALPHA.get(mix, 0.0) if mix_alpha is None else mix_alpha
        self.seed = seed
        self.images, self.ages, self.genders = images, ages.astype(np.float32), genders.astype(np.float32)
        self.batch_size, self.augment, self.shuffle, self.sigma = batch_size, augment, shuffle, sigma
        self.rng = np.random.default_rng(seed)
        self.order = np.arange(len(images))
        self.steps = steps
        self.multiple_of = multiple_of
        if multiple_of > 1 and batch_size % multiple_of:
            raise ValueError(f"batch size {batch_size} does not divide over {multiple_of} devices")
        if multiple_of > 1 and shuffle and len(images) < multiple_of:
            raise ValueError(f"{len(images)} images cannot fill one batch over {multiple_of} devices")
        self.epoch = 0
        self._local = threading.local()
        if shuffle:
            self.rng.shuffle(self.order)

    @property
    def usable(self) -> int:
        """Images an epoch takes: all, or (training over several devices) all but the remainder."""
        n = len(self.images)
        return n - n % self.multiple_of if self.shuffle else n

    @property
    def num_batches(self) -> int:
        full = int(np.ceil(self.usable / self.batch_size))
        return min(full, self.steps) if self.steps else full

    def __len__(self) -> int:
        return self.num_batches

    def __getitem__(self, i: int) -> tuple[Any, ...]:
        idx = self.order[i * self.batch_size : min((i + 1) * self.batch_size, self.usable)]
        weight = None
        if self.multiple_of > 1 and not self.shuffle:
            real = len(idx)
            idx = np.concatenate([idx, np.repeat(idx[-1:], -real % self.multiple_of)])
            weight = (np.arange(len(idx)) < real).astype(np.float32)
        batch = self.images[idx]
        if self.augment is not None:
            aug = self._thread_augment(i)
            batch = np.stack([aug(image=img)["image"] for img in batch])
        ages = self.ages[idx]
        targets = {
            "age": ages[:, None],
            AGE_DISTRIBUTION: age_distributions(ages, self.sigma),
            "gender": self.genders[idx][:, None],
        }
        if self.races is not None:
            targets[RACE] = np.eye(N_RACES, dtype=np.float32)[self.races[idx]]
        if self.soft is not None:  # distillation: blend the teacher's view into the targets
            w = self.soft_weight
            targets[AGE_DISTRIBUTION] = ((1 - w) * targets[AGE_DISTRIBUTION] + w * self.soft[0][idx]).astype(np.float32)
            targets["gender"] = ((1 - w) * targets["gender"] + w * self.soft[1][idx][:, None]).astype(np.float32)
        x = rgb_to_input(batch)
        if self.mix != "none" and len(idx) > 1:
            # Seeded by (seed, epoch, batch), not the shared generator, so worker threads stay reproducible.
            x, targets = mix_batch(x, targets, self.mix, self.mix_alpha,
                                   np.random.default_rng([self.seed, self.epoch, i]))
        return (x, targets) if weight is None else (x, targets, weight)

    def _thread_augment(self, i: int) -> A.Compose:
        """Batch ``i``'s pipeline: each worker thread has its own copy (albumentations keeps RNG state per
        pipeline), seeded for every batch by (seed, epoch, batch) as the mixing is. Seeding a thread's copy
        once from the shared generator made a batch's crops depend on which thread asked for it and in what
        order: one and two devices, which Keras feeds differently, trained on other crops (measured: a
        --full run's first loss 5.6513 against 5.6455; equal without augmentation, and now with it)."""
        aug = getattr(self._local, "augment", None)
        if aug is None:
            aug = self._local.augment = copy.deepcopy(self.augment)
        aug.set_random_seed(int(np.random.default_rng([self.seed, self.epoch, i, AUGMENT_STREAM]).integers(2**31)))
        return aug

    def on_epoch_end(self) -> None:
        self.epoch += 1
        if self.shuffle:
            self.rng.shuffle(self.order)
