"""Keeping library chatter off standard output, where a command's records go.

Keras's LiteRT export prints its "Saved artifact at ..." report (about 120
lines on some versions) with Python's ``print`` and TensorFlow's converter
writes from C++ to descriptor 1 directly, so ``contextlib.redirect_stdout``
alone would miss half of it: the descriptor itself is pointed elsewhere.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

NATIVE_LOGS = "FACEKIT_NATIVE_LOGS"  # 1: show native and library logs (on standard error), for debugging


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Send everything written to standard output during the block (Python's and the descriptor's) to the null
    device, or to standard error when FACEKIT_NATIVE_LOGS=1."""
    to_stderr = os.environ.get(NATIVE_LOGS) == "1"
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError, AttributeError):  # no descriptor 1: nothing to protect
        yield
        return
    sink = os.dup(2) if to_stderr else os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(sink, 1)
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(sys.stderr if to_stderr else null):
            yield
    finally:
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(sink)
