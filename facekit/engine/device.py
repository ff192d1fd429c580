"""Which accelerator Keras's backend sees, and what a backend does to the process: facekit's backend-specific code."""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
import sys

import keras

from facekit.choices import PRECISIONS


def gpu_name() -> str | None:
    """A name for the first GPU of the active backend, or None on CPU."""
    backend = keras.backend.backend()
    try:
        if backend == "jax":
            import jax

            gpus = [d for d in jax.devices() if d.platform == "gpu"]
            return gpus[0].device_kind if gpus else None
        if backend == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            return gpus[0].name if gpus else None
        if backend == "torch":
            import torch

            return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:  # a broken CUDA install means CPU, not a crash
        return None
    return None


def describe() -> dict[str, str | None]:
    return {"backend": keras.backend.backend(), "keras": keras.__version__, "gpu": gpu_name()}


def set_precision(mode: str) -> str:
    """``auto`` (mixed_float16 on a GPU, float32 on CPU), ``mixed`` or ``float32``; returns the policy set."""
    if mode not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {mode!r}")
    gpu = gpu_name()
    if mode == "mixed" and not gpu:
        raise ValueError("--precision mixed needs a GPU: on a CPU float16 is emulated (one step of a tiny Model A "
                         "took over 5 minutes); use auto or float32")
    policy = "mixed_float16" if mode == "mixed" or (mode == "auto" and gpu) else "float32"
    keras.mixed_precision.set_global_policy(policy)
    return policy


# glibc's mallopt parameters (malloc.h) and the values its dynamic rule settles at on 64-bit Linux
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD = 32 * 1024 * 1024  # DEFAULT_MMAP_THRESHOLD_MAX: the highest mallopt accepts
_TRIM_THRESHOLD = 2 * _MMAP_THRESHOLD  # what the dynamic rule pairs with it


def _glibc() -> ctypes.CDLL | None:
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


class MallocDefaults(keras.callbacks.Callback):
    """Undo TensorFlow 2.21's ``M_TRIM_THRESHOLD=128 kb`` for the length of a fit.

    TensorFlow sets it (``generator_dataset_op.cc``: "Memory patch applied") when a
    PyDataset's generator first runs, against a Python 3.11 leak. A fixed threshold
    also turns off glibc's adaptive mmap threshold, so every buffer over 128 KB is
    mmapped and unmapped afresh each step: a step of Model A then takes 1.6x as long on
    a 2-core CPU without AVX-512 (nine times the page faults) and 1.04x as long on one
    with it (``benchmarks.fit_speed``). The values glibc would have adapted to are set
    again at each batch, since the patch lands on a loader thread some time after fit
    starts; the price is memory glibc keeps for reuse, 0.2-0.5 GB more peak resident
    memory for Model A at batch 64.
    """

    def __init__(self) -> None:
        super().__init__()
        self.libc = _glibc() if keras.backend.backend() == "tensorflow" else None

    def reset(self) -> None:
        if self.libc is not None:
            self.libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
            self.libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self.reset()

    def on_test_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self.reset()
