"""Which accelerator Keras's backend sees; the only backend-specific code in facekit, kept here."""

from __future__ import annotations

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
