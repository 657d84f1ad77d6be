"""A content-addressed blob store on disk: message chunks stream in and out, never whole in memory.

A chunk is written to a temporary file while its SHA-256 is computed, flushed to disk (fsync),
then renamed to ``blobs/ab/cd/<digest>`` and its directory fsynced: once :meth:`put` returns,
the bytes survive a crash, so the message record that names the digest can be committed and
acknowledged with 202. Identical chunks share one file. Object storage (S3-compatible) is the
scale-out choice; it has the same put-then-commit contract (docs/architecture.md).
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final

import anyio

__all__ = ["BlobStore", "BlobTooLarge"]

READ_SIZE: Final = 256 * 1024
#: A blob younger than this is never deleted by the purge (an upload may be about to name it).
PURGE_GRACE_SECONDS: Final = 3600


class BlobTooLarge(Exception):
    pass


class BlobStore:
    def __init__(self, root: Path) -> None:
        self._root = root
        self._tmp = root / "tmp"

    def path(self, digest: str) -> Path:
        return self._root / digest[:2] / digest[2:4] / digest

    async def put(self, pieces: AsyncIterator[bytes], max_bytes: int) -> tuple[str, int]:
        """Store a stream; return its digest and size. Past ``max_bytes``: raise, keep nothing."""
        await anyio.to_thread.run_sync(lambda: self._tmp.mkdir(parents=True, exist_ok=True))
        tmp = self._tmp / uuid.uuid4().hex
        digest = hashlib.sha256()
        size = 0
        handle = await anyio.to_thread.run_sync(lambda: tmp.open("wb"))
        try:
            async for piece in pieces:
                if not piece:
                    continue
                size += len(piece)
                if size > max_bytes:
                    raise BlobTooLarge(f"more than {max_bytes} bytes")
                digest.update(piece)
                await anyio.to_thread.run_sync(handle.write, piece)
            await anyio.to_thread.run_sync(self._sync_close, handle)
        except BaseException:
            handle.close()
            tmp.unlink(missing_ok=True)
            raise
        name = digest.hexdigest()
        await anyio.to_thread.run_sync(self._install, tmp, name)
        return name, size

    @staticmethod
    def _sync_close(handle: object) -> None:
        import io

        assert isinstance(handle, io.BufferedWriter)
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()

    def _install(self, tmp: Path, digest: str) -> None:
        final = self.path(digest)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)  # same bytes if it existed; the fresh mtime protects it from purge
        directory = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    async def read(self, digest: str) -> AsyncIterator[bytes]:
        handle = await anyio.to_thread.run_sync(lambda: self.path(digest).open("rb"))
        try:
            while piece := await anyio.to_thread.run_sync(handle.read, READ_SIZE):
                yield piece
        finally:
            handle.close()

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def delete_if_stale(self, digest: str) -> bool:
        path = self.path(digest)
        try:
            if time.time() - path.stat().st_mtime < PURGE_GRACE_SECONDS:
                return False
            path.unlink()
        except FileNotFoundError:
            return False
        return True
