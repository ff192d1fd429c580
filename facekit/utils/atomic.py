"""Writing output files, the one way every command does it: a result is complete or absent, never half-written.

What a target already is decides how it is written (docs/troubleshooting.md, "Output targets"):
- a regular file, or nothing yet: a temporary file beside it, renamed over it when complete;
- a symbolic link: written through to the file it points to, atomically there; the link stays;
- a directory: refused, naming it (never an ``IsADirectoryError`` traceback);
- a character device, FIFO or socket (``/dev/stdout``, ``/dev/null``, a pipe): written to directly when the
  output is a stream (``stream_ok``, predict's records), refused for formats that need a regular file
  (HDF5, .keras, JSON reports); never replaced by a regular file, even as root.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO


class OutputTargetError(OSError):
    """An output path names something that cannot take this output (a directory, or a device for a file format)."""


def target_kind(path: Path) -> str | None:
    """What ``path`` already is, following links: None (nothing yet), "file", "directory" or a special kind."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    except OSError:
        return None  # e.g. a link into a missing folder: treated as nothing there yet
    for test, name in ((stat.S_ISREG, "file"), (stat.S_ISDIR, "directory"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISFIFO, "FIFO (named pipe)"),
                       (stat.S_ISSOCK, "socket")):
        if test(mode):
            return name
    return "special file"


def _special(dest: Path, stream_ok: bool) -> bool:
    """True when ``dest`` is a device, FIFO or socket that a stream may be written to directly."""
    kind = target_kind(dest)
    if kind == "directory":
        raise OutputTargetError(f"{dest}: is a directory; give a file name inside it (e.g. "
                                f"{dest / ('output' + (dest.suffix or ''))})")
    if kind in (None, "file"):
        return False
    if not stream_ok:
        raise OutputTargetError(f"{dest}: is a {kind}, and this output needs a regular file (it is written "
                                "whole and renamed into place); give a file name")
    return True


def output_path(dest: str | Path, stream_ok: bool = False) -> Path:
    """Where a file output really goes, checked before any work starts: a link's target (written through), or
    ``dest``; a directory, or a device where a regular file is needed, is refused as ``atomic_path`` would
    refuse it at the end. With ``stream_ok`` a device or FIFO is where the output goes."""
    dest = Path(dest)
    if _special(dest, stream_ok):
        return dest
    return Path(os.path.realpath(dest)) if dest.is_symlink() else dest


@contextlib.contextmanager
def atomic_path(dest: str | Path, stream_ok: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; rename it over ``dest`` only if the block succeeds.

    The temporary file lives in the same directory so the final rename is atomic
    on POSIX. Any exception, Ctrl-C included, removes it and leaves ``dest``
    as it was. A link is written through (the temporary file goes beside its
    target); a device or FIFO is yielded as it is when ``stream_ok``, else refused.
    """
    dest = Path(dest)
    if _special(dest, stream_ok):
        yield dest
        return
    pending = PendingFile(dest)
    try:
        yield pending.tmp
        pending.commit()
    except BaseException:
        pending.discard()
        raise


class PendingFile:
    """A temporary file beside ``dest`` that becomes ``dest`` on ``commit`` and vanishes on ``discard``.

    ``atomic_path`` for outputs whose end is not one block of code: an annotated
    video grows frame by frame across a generator, and on Ctrl-C the frames
    written so far are committed as a whole, playable file. The temporary name
    keeps ``dest``'s suffix, since writers such as OpenCV's pick the container from it.
    """

    def __init__(self, dest: str | Path) -> None:
        dest = Path(dest)
        _special(dest, stream_ok=False)
        self.dest = Path(os.path.realpath(dest)) if dest.is_symlink() else dest
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.dest.name}.", suffix=".tmp" + self.dest.suffix,
                                   dir=self.dest.parent)
        os.close(fd)
        self.tmp = Path(tmp)

    def commit(self) -> Path:
        os.chmod(self.tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are ordinary files
        os.replace(self.tmp, self.dest)
        return self.dest

    def discard(self) -> None:
        self.tmp.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(dest: str | Path, data: Any) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


@contextlib.contextmanager
def open_output(dest: str | Path | None) -> Iterator[TextIO]:
    """A text stream for a command's output: standard output for None or ``-``, else ``dest`` as ``atomic_path``
    writes it (a device or FIFO directly, since text is a stream)."""
    if dest is None or str(dest) == "-":
        yield sys.stdout
        return
    with atomic_path(dest, stream_ok=True) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        yield f
