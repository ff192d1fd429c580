"""Training on several devices of one machine: Keras's distribution API, data parallel.

``facekit train --devices all|N`` keeps one copy of the model per device and
splits each batch over them (``keras.distribution.DataParallel``). The batch
size stays per device, so the global batch grows with the device count, and
the learning rate grows with it (the linear scaling rule of Goyal et al. 2017);
both are recorded in the run's ``args.json``. Keras's distribution API runs on
the JAX backend; on TensorFlow more than one device is refused with that
reason. On a CPU, ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` splits
the host into N JAX devices, which is how the tests run this.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import keras


@dataclass(frozen=True)
class Plan:
    """The devices a run trains on and what that does to its batch and learning rate."""

    devices: tuple[str, ...]
    per_device_batch: int
    lr: float  # as given, for one device

    @property
    def count(self) -> int:
        return max(1, len(self.devices))

    @property
    def global_batch(self) -> int:
        return self.per_device_batch * self.count

    @property
    def scaled_lr(self) -> float:
        return self.lr * self.count

    def to_json(self) -> dict[str, Any]:
        return {"devices": list(self.devices) or ["default"], "count": self.count,
                "per_device_batch_size": self.per_device_batch, "global_batch_size": self.global_batch,
                "lr": self.lr, "scaled_lr": self.scaled_lr, "backend": keras.backend.backend()}


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


def plan(devices: str | int, batch_size: int, lr: float) -> Plan:
    """Which devices ``devices`` means here; one device needs no distribution at all."""
    wanted = parse_devices(devices)
    if wanted == 1:
        return Plan((), batch_size, lr)
    backend = keras.backend.backend()
    if backend != "jax":
        if wanted is None:
            return Plan((), batch_size, lr)  # "all" on a backend without the distribution API: the one device
        raise ValueError(f"--devices {devices}: Keras's distribution API trains on several devices on the JAX "
                         f"backend, not {backend}; run with KERAS_BACKEND=jax")
    found = keras.distribution.list_devices()
    gpus = [d for d in found if not d.lower().startswith("cpu")]
    pool = gpus or found
    n = len(pool) if wanted is None else wanted
    if n > len(pool):
        raise ValueError(f"--devices {devices}: this machine has {len(pool)} ({', '.join(pool)})")
    return Plan(tuple(pool[:n]) if n > 1 else (), batch_size, lr)


@contextlib.contextmanager
def distributed(p: Plan) -> Iterator[None]:
    """Keras's global distribution set to data parallel over ``p.devices`` for the block (nothing for one)."""
    if p.count == 1:
        yield
        return
    before = keras.distribution.distribution()
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=list(p.devices)))
    try:
        yield
    finally:
        keras.distribution.set_distribution(before)
