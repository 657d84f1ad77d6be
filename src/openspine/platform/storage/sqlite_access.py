"""The SQLite store's access file: the ``access`` audit chain, next to the data file (ADR 0025).

SQLite empties a WAL reader's page cache whenever another connection has committed to the file
since the reader's last transaction. With every read's audit event committed to the data file,
a read-heavy load changed it about a thousand times a second, and every read fetched its pages
again (ADR 0023). Events of write sets that change nothing else (:meth:`WriteSet.is_audit_only`)
are therefore committed to a file of their own, ``<store>-access.db``: the data file then
changes only when data does.

Migration 0007 creates the file, and nothing else ever does: a chain started afresh would hide
what was lost. Without it the writer refuses reads (their events have nowhere to go) and commits
changes as before. Back up and restore the two files together.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

__all__ = ["access_path", "open_access"]


def access_path(store_path: Path) -> Path:
    """``<name>-access<suffix>`` next to the store's data file ``store_path``."""
    return store_path.with_name(f"{store_path.stem}-access{store_path.suffix}")


def open_access(store_path: Path, *, read_only: bool) -> sqlite3.Connection:
    """A connection to the access file of the store at ``store_path``, which must exist.

    Raises :class:`sqlite3.OperationalError` when it does not (mode ``rw`` never creates it).
    """
    mode = "ro" if read_only else "rw"
    return sqlite3.connect(
        f"{access_path(store_path).resolve().as_uri()}?mode={mode}",
        uri=True,
        isolation_level=None,
        check_same_thread=False,
    )
