"""A rich progress display for Keras training: one bar for epochs, one for batches, a line per epoch."""

from __future__ import annotations

from typing import Any

import keras
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from facekit_cli.ui import ProgressLines, err_console, live_display

SHOWN = ("age_mae", "gender_accuracy", "val_age_mae", "val_gender_accuracy")


class RichProgress(keras.callbacks.Callback):
    """Live bars in a terminal or notebook; elsewhere (Colab's plain output, nohup, CI) a line per 10 % of an epoch."""

    def __init__(self, epochs: int, live: bool | None = None, prefix: str = "") -> None:
        """``prefix`` names what is training where one command trains several runs ("member 2/3: ")."""
        super().__init__()
        self.epochs, self.prefix = epochs, prefix
        self.live = live_display() if live is None else live
        self.lines: ProgressLines | None = None
        self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                            console=err_console)
        self.epoch_task = self.bar.add_task(f"{prefix}epochs", total=epochs, info="")
        self.batch_task = None

    def on_train_begin(self, logs: Any = None) -> None:
        # fit() knows the real count (a resumed run's args.json may differ from the command line).
        self.epochs = (self.params or {}).get("epochs", self.epochs)
        self.bar.update(self.epoch_task, total=self.epochs)
        if self.live:
            self.bar.start()

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        total = self.params.get("steps") if self.params else None
        if not self.live:
            self.total = total
            self.lines = ProgressLines(f"{self.prefix}epoch {epoch + 1}/{self.epochs}: batch")
            return
        if self.batch_task is None:
            self.batch_task = self.bar.add_task("batches", total=total, info="")
        self.bar.reset(self.batch_task, total=total)
        self.bar.update(self.epoch_task, completed=epoch)

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        logs = logs or {}
        info = f"loss {logs.get('loss', float('nan')):.3f} MAE {logs.get('age_mae', float('nan')):.2f}"
        if self.lines is not None:
            if batch + 1 < (self.total or 0):  # the epoch's own line reports the end
                self.lines(batch + 1, self.total, info)
            return
        self.bar.update(self.batch_task, completed=batch + 1, info=info)

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        logs = logs or {}
        parts = [f"{k} {logs[k]:.4g}" for k in SHOWN if k in logs]
        self.bar.console.print(f"{self.prefix}epoch {epoch + 1}/{self.epochs}: " + ", ".join(parts),
                               highlight=False)
        self.bar.update(self.epoch_task, completed=epoch + 1)

    def on_train_end(self, logs: Any = None) -> None:
        self.bar.stop()
