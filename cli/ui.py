"""Shared CLI plumbing: progress bars, error exits and JSON output."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import typer
from rich.console import Console
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
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def progress_bar(description: str, quiet: bool = False) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar driven by a library ``progress(done, total)`` callback."""
    if quiet:
        yield lambda done, total: None
        return
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), console=err_console, transient=False,
    ) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

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
