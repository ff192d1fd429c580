"""One advisory file lock for every "only one process at a time" in facekit: building a Keras environment,
writing a prep cache, and the tests' session-wide fixtures shared by pytest-xdist workers."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no advisory lock; callers' temp-and-rename writes still keep half-done work out
    fcntl = None  # type: ignore[assignment]


class LockHeld(OSError):
    """Another process holds the lock (raised only when the caller asked not to wait)."""

    def __init__(self, path: Path, holder: int | None):
        self.path, self.holder = path, holder
        super().__init__(f"{path} is locked by another process" + (f" (pid {holder})" if holder else ""))


@contextlib.contextmanager
def file_lock(path: str | Path, *, wait: bool = True) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing, left in place: removing it would let a third
    process lock a new file while a second still holds the old one). The lock goes with the process, so a
    killed holder never leaves it stuck. ``wait=False`` raises LockHeld instead of waiting."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        if fcntl is None:
            yield
            return
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError as exc:
            raise LockHeld(path, _holder(path)) from exc
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")  # who holds it, for the message a second process prints
            handle.flush()
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _holder(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
