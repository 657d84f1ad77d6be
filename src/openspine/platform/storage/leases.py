"""Leases that let one process of many run a scheduled duty (the MESH and EPS jobs).

Every web worker of every server runs the job loops, but only the one that leads a duty does
its work; the others ask again at their next turn, so the duty moves on by itself when its
leader stops or dies. On SQLite the lease is an exclusive ``flock`` on ``<store>.lead-<duty>``
(the kernel frees it with the process, :class:`FileLeases`); on PostgreSQL it is a session
advisory lock held by a connection of its own (the database frees it with the session,
:class:`~openspine.platform.storage.postgres_leases.AdvisoryLeases`).
"""

from __future__ import annotations

import fcntl
import os
import re
from pathlib import Path
from typing import Final

from openspine.platform.storage.ports import StoreUnavailable

__all__ = ["FileLeases", "duty_name"]

_DUTY: Final = re.compile(r"[a-z][a-z0-9-]{0,40}")
_LOCK_FLAGS: Final = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC


def duty_name(duty: str) -> str:
    """``duty``, if it is a name a lease can have (it becomes part of a file name)."""
    if not _DUTY.fullmatch(duty):
        raise ValueError(f"not a duty name: {duty!r}")
    return duty


class FileLeases:
    """Leases held as ``flock`` on files beside a SQLite store."""

    def __init__(self, store_path: Path) -> None:
        self._store_path = store_path
        self._held: dict[str, int] = {}

    def lead(self, duty: str) -> bool:
        if duty in self._held:
            return True
        path = self._store_path.with_name(f"{self._store_path.name}.lead-{duty_name(duty)}")
        try:
            fd = os.open(path, _LOCK_FLAGS, 0o600)
        except OSError as exc:
            raise StoreUnavailable("cannot open the lease file") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._held[duty] = fd
        return True

    def release_all(self) -> None:
        held, self._held = self._held, {}
        for fd in held.values():
            os.close(fd)  # and with it the lock
