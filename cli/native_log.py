"""Keep native libraries' log noise out of the CLI's output.

TensorFlow, absl, MediaPipe and LiteRT write INFO and WARNING lines straight to
file descriptor 2 from C++ ("Could not find cuda drivers", "Created TensorFlow
Lite XNNPACK delegate", "failed call to cuInit", about 30 lines around one prep
run), where no Python setting reaches them: ``TF_CPP_MIN_LOG_LEVEL=3`` still
lets TensorFlow 2.21's absl lines through. So the CLI routes descriptor 2
through a pipe whose reader drops lines of that shape and passes everything
else on; Python's own ``sys.stderr`` (messages, progress bars) writes to the
real terminal directly, so it stays a terminal and nothing of facekit's is
delayed. Spawned prep workers inherit the pipe, so their noise goes too.
``FACEKIT_NATIVE_LOGS=1`` turns the filter off, for debugging native code.
"""

from __future__ import annotations

import atexit
import faulthandler
import io
import os
import re
import signal
import sys
import time

NOISE = re.compile(
    r"^(?:"
    r"[IW]\d{4} [\d:.]+\s+\d+ [\w.]+:\d+\]"  # absl/glog INFO and WARNING
    r"|E\d{4} [\d:.]+\s+\d+ (?:cuda_platform|cuda_executor|cuda_diagnostics|cuda_dnn|cuda_blas|cuda_fft)\.cc:\d+\]"
    # TensorFlow 2.16-2.20's own format: "2026-12-04 22:20:06.161385: I external/local_tsl/...cc:38] ..."
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IW] [\w./-]+:\d+\]"
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: E [\w./-]*(?:cuda_\w+|cuda/\w+)\.cc:\d+\]"
    r"|WARNING: All log messages before absl::InitializeLog"
    r"|WARNING: Logging before InitGoogle"
    r"|INFO: "  # TensorFlow Lite / LiteRT info
    r"|To enable the following instructions: "  # the second line of TensorFlow's CPU-feature note
    r")"
)


def is_noise(line: str) -> bool:
    return bool(NOISE.match(line))


def filter_native_stderr() -> None:
    """Install the filter once for this process (a no-op where it cannot or should not be).

    The reader is a forked process, not a thread: if native code crashes this
    process, the reader still passes on everything written before the crash
    (an abort message, a fatal log line) and then ends.
    """
    if (os.environ.get("FACEKIT_NATIVE_LOGS") == "1" or os.name != "posix"
            or getattr(filter_native_stderr, "installed", False)):
        return
    try:
        sys.stderr.flush()
        real = os.dup(2)
        read_end, write_end = os.pipe()
    except (OSError, ValueError, AttributeError):  # no descriptor 2 (some embedded interpreters)
        return
    reader = os.fork()
    if reader == 0:  # the reader: only the pipe in, the real stderr out
        os.close(write_end)
        try:
            _pump(read_end, real)
        finally:
            os._exit(0)
    os.close(read_end)
    os.dup2(write_end, 2)
    os.close(write_end)
    encoding = getattr(sys.stderr, "encoding", None) or "utf-8"
    sys.stderr = io.TextIOWrapper(io.FileIO(real, "w", closefd=False), encoding=encoding,
                                  errors="backslashreplace", line_buffering=True)
    faulthandler.enable(file=sys.stderr)  # a Python-level crash report goes straight to the terminal

    def restore() -> None:
        os.dup2(real, 2)  # closes this process's write end: the reader drains what is left and ends
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            if os.waitpid(reader, os.WNOHANG)[0]:
                return
            time.sleep(0.01)

    atexit.register(restore)
    filter_native_stderr.installed = True  # type: ignore[attr-defined]


def _pump(read_end: int, out: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the command; the reader ends with the pipe
    with io.FileIO(read_end, "r") as raw:
        for line in io.BufferedReader(raw):
            if not is_noise(line.decode("utf-8", "replace")):
                os.write(out, line)
