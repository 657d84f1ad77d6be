"""A content-addressed blob store on disk: message chunks stream in and out, never whole in memory.

A chunk is written to a temporary file while its SHA-256 is computed, then made durable and
renamed to ``blobs/ab/cd/<digest>``: once :meth:`put` returns, the bytes survive a crash, so the
message record that names the digest can be committed and acknowledged with 202. Identical
chunks share one file. Object storage (S3-compatible) is the scale-out choice; it has the same
put-then-commit contract (docs/architecture.md).

Durability is group-committed like the store's writes (ADR 0010): one installer thread takes
every blob waiting, syncs the file system once (``syncfs``), renames them all into place and
syncs once more for the directory entries, then answers each waiting upload. Two syncs per
batch, not three per chunk. Where ``syncfs`` is missing (not Linux), each file and directory is
fsynced instead.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import hashlib
import os
import queue
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import anyio

__all__ = ["BlobStore", "BlobTooLarge"]

READ_SIZE: Final = 256 * 1024
#: Bodies up to this size are written in one go (one worker-thread hop, not one per piece).
SMALL: Final = 1024 * 1024
#: A blob younger than this is never deleted by the purge (an upload may be about to name it).
PURGE_GRACE_SECONDS: Final = 3600


class BlobTooLarge(Exception):
    pass


def _syncfs_function() -> object | None:
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name, use_errno=True) if name else None
    return getattr(libc, "syncfs", None) if libc is not None else None


_SYNCFS = _syncfs_function()
_STOP = object()


@dataclass(frozen=True, slots=True)
class _Job:
    tmp: Path
    digest: str
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]


class _Installer:
    """The one thread that makes waiting blobs durable and visible, a batch at a time."""

    def __init__(self, store: BlobStore) -> None:
        self._store = store
        self._queue: queue.SimpleQueue[_Job | object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._main, name="blob-installer", daemon=True)
        self._thread.start()

    async def install(self, tmp: Path, digest: str) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._queue.put(_Job(tmp, digest, loop, future))
        await future

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout=10)

    def _main(self) -> None:
        while True:
            item = self._queue.get()
            if not isinstance(item, _Job):
                return
            batch = [item]
            while True:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if not isinstance(nxt, _Job):
                    self._queue.put(_STOP)
                    break
                batch.append(nxt)
            error: BaseException | None = None
            try:
                self._store._install_batch([(job.tmp, job.digest) for job in batch])
            except BaseException as exc:  # every waiting upload must be answered
                error = exc
            for job in batch:
                job.loop.call_soon_threadsafe(_settle, job.future, error)


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(OSError("the blob store could not make the chunk durable"))


class BlobStore:
    def __init__(self, root: Path) -> None:
        self._root = root
        self._tmp = root / "tmp"
        self._tmp.mkdir(parents=True, exist_ok=True)
        self._installer: _Installer | None = None

    def close(self) -> None:
        if self._installer is not None:
            self._installer.close()
            self._installer = None

    async def _make_durable(self, tmp: Path, digest: str) -> None:
        if self._installer is None:
            self._installer = _Installer(self)
        await self._installer.install(tmp, digest)

    def path(self, digest: str) -> Path:
        return self._root / digest[:2] / digest[2:4] / digest

    async def put(self, pieces: AsyncIterator[bytes], max_bytes: int) -> tuple[str, int]:
        """Store a stream; return its digest and size. Past ``max_bytes``: raise, keep nothing.

        A body that ends within :data:`SMALL` bytes is written in one worker-thread call (open,
        write, fsync, rename, directory fsync); a larger one streams piece by piece.
        """
        buffered: list[bytes] = []
        size = 0
        stream = pieces.__aiter__()
        async for piece in stream:
            size += len(piece)
            if size > max_bytes:
                raise BlobTooLarge(f"more than {max_bytes} bytes")
            buffered.append(piece)
            if size > SMALL:
                return await self._put_stream(buffered, stream, size, max_bytes)
        data = b"".join(buffered)
        digest = hashlib.sha256(data).hexdigest()
        tmp = self._tmp / uuid.uuid4().hex
        await anyio.to_thread.run_sync(tmp.write_bytes, data)
        await self._make_durable(tmp, digest)
        return digest, size

    async def _put_stream(
        self, head: list[bytes], rest: AsyncIterator[bytes], size: int, max_bytes: int
    ) -> tuple[str, int]:
        tmp = self._tmp / uuid.uuid4().hex
        digest = hashlib.sha256()
        handle = await anyio.to_thread.run_sync(lambda: tmp.open("wb"))
        try:
            for piece in head:
                digest.update(piece)
            await anyio.to_thread.run_sync(handle.write, b"".join(head))
            async for piece in rest:
                if not piece:
                    continue
                size += len(piece)
                if size > max_bytes:
                    raise BlobTooLarge(f"more than {max_bytes} bytes")
                digest.update(piece)
                await anyio.to_thread.run_sync(handle.write, piece)
            await anyio.to_thread.run_sync(handle.close)
        except BaseException:
            handle.close()
            tmp.unlink(missing_ok=True)
            raise
        name = digest.hexdigest()
        await self._make_durable(tmp, name)
        return name, size

    def _install_batch(self, items: list[tuple[Path, str]]) -> None:
        """Make every file durable, then move it to its content address, then persist that."""
        if _SYNCFS is None:
            for tmp, digest in items:
                self._install_one(tmp, digest)
            return
        self._syncfs()
        for tmp, digest in items:
            final = self.path(digest)
            if final.exists():  # the same bytes, already durable: keep them, fresh for purge
                tmp.unlink(missing_ok=True)
                os.utime(final)
                continue
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
        self._syncfs()

    def _syncfs(self) -> None:
        fd = os.open(self._root, os.O_RDONLY)
        try:
            if _SYNCFS(fd) != 0:  # type: ignore[operator]
                raise OSError(ctypes.get_errno(), "syncfs failed")
        finally:
            os.close(fd)

    def _install_one(self, tmp: Path, digest: str) -> None:
        final = self.path(digest)
        if final.exists():
            tmp.unlink(missing_ok=True)
            os.utime(final)
            return
        with tmp.open("rb+") as handle:
            os.fsync(handle.fileno())
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)
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
