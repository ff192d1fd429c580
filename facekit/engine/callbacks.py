"""The callbacks a training run adds to ``fit``: saving the best and last models, the hand-in score,
early stopping that survives a resume, and the EMA swap for exports."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import keras

from facekit.engine.runs import (
    save_checkpoint,
)
from facekit.engine.selection import AGE, GENDER, SCORE, hand_in_score
from facekit.model.export import float32_copy, save_hand_in


@contextmanager
def averaged_weights(model: keras.Model, ema: bool) -> Iterator[None]:
    """The optimizer's moving averages in place of the trained weights, for the block, in an EMA run.

    A checkpoint holds the raw weights (``SaveLast`` runs before ``SwapEMAWeights``) and the averages in
    its optimizer state; the hand-in file of an EMA run holds the averages.
    """
    if not ema:
        yield
        return
    raw = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
    model.optimizer.finalize_variable_values(model.trainable_variables)
    try:
        yield
    finally:
        for variable, value in zip(model.trainable_variables, raw):
            variable.assign(value)


class ResumedEarlyStopping(keras.callbacks.EarlyStopping):
    """Early stopping that carries a resumed run's count on.

    Keras's resets its best value and its count of epochs without improvement
    at the start of every ``fit``, so a run resumed 12 epochs after its best
    trained on past the patience an uninterrupted run stops at (seen: best epoch
    16, resumed at 18, still training at 29 with patience 12). The recorded best
    and count are put back once, for this session's first fit.
    """

    def __init__(self, *args: Any, best: float = math.inf, wait: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._resumed: tuple[float, int] | None = (best, wait) if math.isfinite(best) else None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        super().on_train_begin(logs)
        if self._resumed is not None:
            self.best, self.wait = self._resumed
            self._resumed = None


def diverged(logs: dict[str, Any] | None) -> bool:
    """Whether an epoch's training loss is NaN or infinite: its weights are not worth keeping."""
    loss = (logs or {}).get("loss")
    return loss is not None and not math.isfinite(float(loss))


class SaveBest(keras.callbacks.Callback):
    """Export the deployable model atomically whenever the monitored metric improves."""

    def __init__(self, export: keras.Model, dest: Path, monitor: str | None, best: float = math.inf,
                 best_epoch: int | None = None) -> None:
        super().__init__()
        self.export, self.dest, self.monitor = export, dest, monitor
        self.best, self.best_epoch = best, best_epoch
        self.best_logs: dict[str, float] = {}
        self._float32: keras.Model | None = None  # the float32 twin of a mixed-precision export, built once

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        value = logs.get(self.monitor) if self.monitor else None
        if diverged(logs):  # NaN weights are never exported, not even as the last epoch of a --full run
            return
        if self.monitor is None or (value is not None and value < self.best):
            self.best = float(value) if value is not None else self.best
            self.best_epoch = epoch + 1
            self.best_logs = {k: float(v) for k, v in logs.items()}
            if self._float32 is None:
                self._float32 = float32_copy(self.export)
            elif self._float32 is not self.export:
                self._float32.set_weights(self.export.get_weights())
            save_hand_in(self._float32, self.dest)


class ScoreEpoch(keras.callbacks.Callback):
    """Adds ``val_score`` to each epoch's logs, for the callbacks after it (saving, early stopping, the CSV)."""

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs is not None and AGE in logs and GENDER in logs:
            logs[SCORE] = hand_in_score(logs[AGE], logs[GENDER])


class SaveLast(keras.callbacks.Callback):
    """The full training model with optimizer state, and the epoch it holds, for --resume.

    Placed before ``SwapEMAWeights`` so it saves the raw weights (the EMA lives in
    the optimizer state): a resumed run continues the raw trajectory.
    """

    def __init__(self, run_dir: Path, seconds: Callable[[], float]) -> None:
        super().__init__()
        self.run_dir, self.seconds = run_dir, seconds

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if diverged(logs):  # the last good checkpoint stays the one --resume continues from
            return
        save_checkpoint(self.run_dir, self.model, epoch + 1, self.seconds(), logs)


class StopOnNaN(keras.callbacks.Callback):
    """Stop at the first batch whose loss is NaN or infinite, and remember where.

    Keras's TerminateOnNaN prints to stdout (which ``--json`` keeps for the result) and forgets where it
    stopped; the run's end needs both to say what happened and what to change.
    """

    def __init__(self) -> None:
        super().__init__()
        self.where: tuple[int, int, float] | None = None  # (1-based epoch, 1-based batch, the loss)
        self._epoch = 0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch = epoch + 1

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        loss = float(keras.ops.convert_to_numpy(loss))
        if not math.isfinite(loss):
            self.where = (self._epoch, batch + 1, loss)
            self.model.stop_training = True
