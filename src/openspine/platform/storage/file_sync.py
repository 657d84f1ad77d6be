"""Making files durable: ``syncfs`` of a whole file system where Linux has it.

A write set may name files written without a sync of their own (MESH message bodies, ADR 0016):
``WriteSet.sync_dirs``. Whoever commits it syncs those directories' file systems once for the
whole batch before the commit, so one ``syncfs`` covers every upload of every worker in it, and
a committed record never names a file that a crash could lose.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = ["HAVE_SYNCFS", "fsync_directory", "sync_file_systems"]


def _load_syncfs() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name, use_errno=True) if name else None
    return getattr(libc, "syncfs", None) if libc is not None else None


_SYNCFS = _load_syncfs()
#: Whether this system can sync one file system (Linux); elsewhere files are fsynced one by one.
HAVE_SYNCFS = _SYNCFS is not None


def sync_file_systems(directories: Iterable[str]) -> None:
    """Write back and wait for every dirty page of the file systems holding ``directories``."""
    if _SYNCFS is None:
        os.sync()  # all file systems: the only portable choice
        return
    for directory in sorted(set(directories)):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            if _SYNCFS(fd) != 0:
                raise OSError(ctypes.get_errno(), f"syncfs failed on {directory}")
        finally:
            os.close(fd)


def fsync_directory(directory: Path) -> None:
    """Persist a directory's entries (a file created or renamed in it)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
