"""Shared CLI plumbing: progress bars, error exits and JSON output."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console()
err_console = Console(stderr=True)


def reason(exc: BaseException) -> str:
    """An exception as `<file>: <reason>` where the OS names a file (a read-only folder, a file in the way)."""
    if isinstance(exc, OSError) and exc.filename and exc.strerror:
        from pathlib import Path

        if isinstance(exc, (FileExistsError, NotADirectoryError)) and Path(exc.filename).is_file():
            return f"{exc.filename}: is a file, where a folder is needed for the output"
        return f"{exc.filename}: {exc.strerror}"
    return str(exc)


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def live_display() -> bool:
    """Whether stderr can redraw a bar in place (a terminal or a notebook), rather than only append lines."""
    return err_console.is_terminal or err_console.is_jupyter


class ProgressLines:
    """Progress as appended lines, every ``step`` of the way, where a live bar cannot redraw.

    In a Colab cell, under ``nohup`` or in a CI log a bar shows nothing until it
    ends (training: minutes); a line per 10 % shows the run is alive.
    """

    def __init__(self, description: str, step: float = 0.1) -> None:
        self.description, self.step = description, step
        self.start = time.monotonic()
        self.next_fraction = step
        self.last_done: int | None = None

    def __call__(self, done: int, total: int | None, extra: str = "") -> None:
        if not total or done == self.last_done:  # the same count again (a video's summary after its last frame)
            return
        self.last_done = done
        if done >= total or done / total + 1e-9 >= self.next_fraction:
            while self.next_fraction <= done / total + 1e-9:
                self.next_fraction += self.step
            elapsed = time.monotonic() - self.start
            eta = elapsed / done * (total - done) if done else float("nan")
            line = f"{self.description} {done}/{total} ({done / total:.0%}), {_clock(elapsed)} elapsed"
            if done < total:
                line += f", about {_clock(eta)} left"
            err_console.print(line + (f", {extra}" if extra else ""), highlight=False, markup=False,
                              soft_wrap=True)


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


@contextlib.contextmanager
def progress_bar(description: str, quiet: bool = False) -> Iterator[Callable[..., None]]:
    """A rich progress bar driven by a library ``progress(done, total)`` callback (lines where it cannot redraw).

    The callback takes an optional third argument, a short text shown after the
    bar (a rate such as "41.2 faces/s").
    """
    if quiet:
        yield lambda done, total, extra="": None
        return
    if not live_display():
        yield ProgressLines(description)
        return
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[extra]}"), console=err_console,
        transient=False,
    ) as bar:
        task = bar.add_task(description, total=None, extra="")

        def update(done: int, total: int, extra: str = "") -> None:
            bar.update(task, completed=done, total=total, extra=extra)

        yield update


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def interrupt_once(signum: int, frame: object) -> None:
    """SIGINT handler: the first Ctrl-C interrupts; later ones never break the cleanup it started.

    A second KeyboardInterrupt raised inside cleanup (a worker pool's shutdown,
    an atomic write removing its temporary file) once surfaced as
    "RuntimeError: release unlocked lock" and left files behind. The second
    press only says what is happening; a third quits at once.
    """
    import os
    import sys

    interrupt_once.count += 1  # type: ignore[attr-defined]
    if interrupt_once.count == 1:  # type: ignore[attr-defined]
        raise KeyboardInterrupt
    if interrupt_once.count == 2:  # type: ignore[attr-defined]
        sys.stderr.write("\ncleaning up (removing temporary files); press Ctrl-C again to quit at once\n")
        return
    os._exit(128 + signum)


interrupt_once.count = 0  # type: ignore[attr-defined]
