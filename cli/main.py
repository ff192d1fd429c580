"""The ``facekit`` command: thin wrappers that parse options, call the library and print results."""

from __future__ import annotations

from typing import Annotated

import typer

from facekit_cli.commands import check, evaluate, info, predict, prep, serve, train
from facekit_cli.native_log import filter_native_stderr
from facekit_cli.ui import console, interrupt_once

app = typer.Typer(
    name="facekit",
    help="Age and gender models from UTKFace-style face images: prep, train, check, predict, evaluate.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        from facekit import __version__

        console.print(f"facekit {__version__}", highlight=False)
        raise typer.Exit()


# Set by main(): the native log filter rewires this process's stderr, which only the real program may do
# (not a test calling the app in-process).
_PROGRAM = {"filter_logs": False}


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          metavar="", help="Print facekit's version and exit.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", metavar="",
                                          help="Show the TensorFlow, absl, MediaPipe and LiteRT log lines "
                                          "facekit hides (give it before the command).")] = False,
) -> None:
    """Age and gender models from UTKFace-style face images: prep, train, check, predict, evaluate."""
    if _PROGRAM["filter_logs"] and not verbose:
        filter_native_stderr()

# Each command, and the docs page its --help ends with (the pages are in docs/ of facekit's source).
COMMANDS = [
    (prep.prep, "prep.md"),
    (prep.template, "prep.md"),
    (train.train, "train.md"),
    (check.check, "check.md"),
    (check.merge, "check.md"),
    (info.backbones, "train.md"),
    (info.doctor, "troubleshooting.md"),
    (predict.predict, "predict.md"),
    (evaluate.evaluate, "evaluate.md"),
    (serve.serve, "serve.md"),
]
for command, page in COMMANDS:
    app.command(epilog=f"More: docs/{page} in facekit's source (linked from README).")(command)


def main() -> None:
    import signal
    import sys

    # SIGTERM (a closed terminal, `kill`, a CI timeout) unwinds like Ctrl-C does, so every atomic write removes
    # its temporary file instead of leaving it behind.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    signal.signal(signal.SIGINT, interrupt_once)
    _PROGRAM["filter_logs"] = True
    app()


if __name__ == "__main__":  # python -m facekit_cli.main, where the facekit script is not installed
    main()
