"""Training on several devices of one machine: Keras's distribution API, data parallel.

``facekit train --devices all|N`` keeps one copy of the model per device and
splits each batch over them. The batch size stays per device, so the global
batch grows with the device count, and the learning rate grows with it (the
linear scaling rule of Goyal et al. 2017); both are recorded in the run's
``args.json``.

On JAX this is Keras's own distribution API (``keras.distribution.DataParallel``).
Keras's distribution API does not drive ``fit`` on TensorFlow; there Keras's
TensorFlow trainer follows the ``tf.distribute`` strategy in scope, so this
module (the one place facekit touches ``tf.*`` for training) enters a
``MirroredStrategy`` over the same devices, and everything else stays Keras.
TensorFlow's replicas normalise each over its own share of the batch unless
BatchNormalization is ``synchronized``; facekit synchronises them
(``sync_batch_norm``) so a batch means the same on N devices as on one, as
it does on JAX. Tests split a CPU into devices: ``XLA_FLAGS=--xla_force_host_platform_device_count=N``
for JAX, ``tf.config.set_logical_device_configuration`` for TensorFlow.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import keras

from facekit.contract.probe import all_layers
from facekit.engine.recipe import parse_devices


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


def plan(devices: str | int, batch_size: int, lr: float) -> Plan:
    """Which devices ``devices`` means here; one device needs no distribution at all."""
    wanted = parse_devices(devices)
    if wanted == 1:
        return Plan((), batch_size, lr)
    backend = keras.backend.backend()
    if backend not in ("jax", "tensorflow"):
        if wanted is None:
            return Plan((), batch_size, lr)  # "all" on a backend facekit cannot distribute: the one device
        raise ValueError(f"--devices {devices}: facekit trains on several devices on the JAX or TensorFlow "
                         f"backend, not {backend}")
    found = keras.distribution.list_devices()
    gpus = [d for d in found if not d.lower().startswith("cpu")]
    pool = gpus or found
    n = len(pool) if wanted is None else wanted
    if n > len(pool):
        raise ValueError(f"--devices {devices}: this machine has {len(pool)} ({', '.join(pool)})")
    return Plan(tuple(pool[:n]) if n > 1 else (), batch_size, lr)


@contextlib.contextmanager
def distributed(p: Plan) -> Iterator[None]:
    """Data parallel over ``p.devices`` for the block (nothing for one device).

    Everything from building the model to the last epoch must run inside it:
    both backends place each variable when it is created.
    """
    if p.count == 1:
        yield
        return
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf  # the edge where Keras needs TensorFlow's own strategy

        with tf.distribute.MirroredStrategy([f"/{d}" for d in p.devices]).scope():
            yield
        return
    before = keras.distribution.distribution()
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=list(p.devices)))
    try:
        yield
    finally:
        keras.distribution.set_distribution(before)


def sync_batch_norm(model: keras.Model, p: Plan) -> int:
    """Batch statistics over the global batch on TensorFlow replicas, as on one device; returns how many
    layers changed. The hand-in file is written unsynchronised (``facekit.model.export``): only TensorFlow
    accepts the flag, and inference never uses it."""
    if p.count == 1 or keras.backend.backend() != "tensorflow":
        return 0
    layers = [layer for layer in all_layers(model, keras) if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in layers:
        layer.synchronized = True
    return len(layers)
