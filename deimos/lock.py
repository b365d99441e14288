"""The one file lock of the library: an exclusive, blocking `fcntl.flock` on a lock file.

Used by the label store (``data/labels/.lock``) and the campaign (``.deimos.lock``). `flock`
locks an open file description, so two holders conflict whether they are processes or threads
of one process, and the kernel drops the lock when its holder dies: a crashed writer never
leaves a stale lock behind. The lock file itself is created if missing and never deleted.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def exclusive_lock(path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive lock on `path` for the ``with`` block, waiting for it if need be.

    Args:
        path: the lock file; created (mode 0644) when missing; its folder must exist.

    Raises:
        OSError: the lock file cannot be opened.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the lock
