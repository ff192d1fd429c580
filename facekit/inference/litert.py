"""A faster engine for ``predict``: the same model converted by Keras to LiteRT (TFLite) and run by XNNPACK.

On a 2-core CPU the default Model B answers one face in 16-19 ms through
Keras's compiled predict step and in 7 ms as LiteRT (``benchmarks/predict_speed.py``),
which is what brings predict under 30 ms a face. The conversion is Keras's own
(``Model.export(format="litert")``, TensorFlow backend, Keras releases since late 2025)
and takes about 10 s, so the result is kept under facekit's cache directory,
named by the model file's sha256. Before a converted model is used it must
agree with the Keras model on a probe batch (``AGREEMENT``); otherwise, and
wherever conversion or the interpreter is unavailable (the JAX backend, an
older Keras), predict says why and runs the Keras model. Evaluate and check
always use Keras: they score the file the lecturer loads.
"""

from __future__ import annotations

import inspect
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from facekit.utils.atomic import atomic_path
from facekit.utils.cachedir import user_cache
from facekit.utils.streams import quiet_stdout

KEEP = 20  # converted models kept in the cache (about 9 MB each for B)
AGREEMENT = 1e-3  # most a converted model may differ from Keras (years; probability) on the probe batch


class EngineUnavailable(Exception):
    """LiteRT cannot run this model here; the message says why."""


def cache_dir() -> Path:
    return user_cache("litert")


def interpreter_class() -> Any:
    """LiteRT's interpreter: the ai-edge-litert package if installed, else TensorFlow's copy of it."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter
    except ImportError:
        pass
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import tensorflow as tf

            return tf.lite.Interpreter
    except (ImportError, AttributeError):
        raise EngineUnavailable("no LiteRT interpreter (install ai-edge-litert or TensorFlow)") from None


def convert(model: Any, sha256: str) -> Path:
    """The model as a .tflite file in the cache (converted once per model file content)."""
    import keras

    dest = cache_dir() / f"{sha256}.tflite"
    if dest.is_file():
        dest.touch()  # recently used: kept by _prune
        return dest
    if keras.backend.backend() != "tensorflow":
        raise EngineUnavailable(f"Keras converts to LiteRT on the TensorFlow backend, not {keras.backend.backend()}")
    try:
        # Keras before 3.6 has no `verbose`; whatever any version prints must not reach predict's records.
        quiet = {"verbose": False} if "verbose" in inspect.signature(model.export).parameters else {}
        with atomic_path(dest) as tmp, warnings.catch_warnings(), quiet_stdout():  # tmp ends in .tflite too
            warnings.simplefilter("ignore")
            model.export(str(tmp), format="litert", **quiet)
    except Exception as exc:  # an older Keras ("Unrecognized format=litert"), a converter bug: Keras answers
        raise EngineUnavailable(f"Keras {keras.__version__} could not convert it to LiteRT "
                                f"({type(exc).__name__}: {str(exc)[:200]})") from None
    _prune(dest.parent)
    return dest


def _prune(folder: Path, keep: int = KEEP) -> None:
    """Drop all but the ``keep`` most recently used conversions: every retrained model adds one."""
    files = sorted(folder.glob("*.tflite"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in files[keep:]:
        old.unlink(missing_ok=True)


class LiteRTModel:
    """A converted model answering batches like ``Model.predict_on_batch``: outputs in the Keras model's order."""

    def __init__(self, tflite: Path, keras_model: Any, threads: int | None = None) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TensorFlow's copy warns that it moved to ai-edge-litert
            self._it = interpreter_class()(model_path=str(tflite), num_threads=threads or os.cpu_count() or 1)
        self._input = self._it.get_input_details()[0]["index"]
        self._outputs = [o["index"] for o in self._it.get_output_details()]
        self._batch = -1
        self._order = self._match(keras_model)

    def _run(self, x: np.ndarray) -> list[np.ndarray]:
        if len(x) != self._batch:
            self._it.resize_tensor_input(self._input, list(x.shape), strict=False)
            self._it.allocate_tensors()
            self._batch = len(x)
        self._it.set_tensor(self._input, np.ascontiguousarray(x, np.float32))
        self._it.invoke()
        return [self._it.get_tensor(i).copy() for i in self._outputs]

    def _match(self, keras_model: Any) -> list[int]:
        """Which LiteRT output is which Keras output, checked on a probe batch (names do not survive conversion)."""
        probe = np.random.default_rng(0).random((4, *keras_model.input_shape[1:]), dtype=np.float32)
        want = [np.asarray(o) for o in keras_model.predict_on_batch(probe)]
        got = self._run(probe)
        order = []
        for w in want:
            diffs = [float(np.abs(g.reshape(w.shape) - w).max()) if g.size == w.size else np.inf for g in got]
            best = int(np.argmin(diffs))
            if diffs[best] > AGREEMENT or best in order:
                raise EngineUnavailable(f"the converted model differs from the Keras model by {diffs[best]:.2g} "
                                        f"(allowed {AGREEMENT})")
            order.append(best)
        return order

    def predict_on_batch(self, x: np.ndarray) -> list[np.ndarray]:
        out = self._run(x)
        return [out[i] for i in self._order]


def accelerate(model: Any, sha256: str) -> LiteRTModel:
    """The LiteRT twin of a loaded Keras model; raises EngineUnavailable with the reason where there is none."""
    tflite = convert(model, sha256)
    try:
        return LiteRTModel(tflite, model)
    except (ValueError, RuntimeError) as exc:  # a damaged cache file: convert again, once
        tflite.unlink(missing_ok=True)
        try:
            return LiteRTModel(convert(model, sha256), model)
        except (ValueError, RuntimeError):
            raise EngineUnavailable(f"LiteRT could not run the converted model ({exc})") from None
