"""A blob store on disk: message chunks stream in and out, never whole in memory.

A chunk is named by its SHA-256. A body of up to :data:`INLINE` bytes whose durability the
commit provides is appended to the writing process's current pack file, ``blobs/packs/<name>``,
and its reference says where: ``<digest>@<pack>:<offset>:<size>`` (ADR 0021). A file of its own
per 1 KiB message cost an inode allocation in the kernel and a 4 KiB block on disk for each, and
left the commit's ``syncfs`` thousands of small files to write back; an append costs none of
that. A pack goes when no message names it any more (:meth:`BlobStore.delete_pack_if_stale`,
called by the sweep); each process starts a new pack every hour, so packs leave in the order
the retention period frees them.

Any other chunk is stored at ``blobs/ab/cd/<digest>``, its reference being the digest alone. A
small one (up to :data:`SMALL`) is hashed in memory and written there directly; a larger one
streams to a temporary file while it is hashed, then is renamed there. Identical chunks share
one file. Object storage (S3-compatible) is the scale-out choice; it has the same
put-then-commit contract (docs/architecture.md).

Durability is the commit's (ADR 0016): on Linux :meth:`BlobStore.put` does not sync. The write
set that names the digest carries :attr:`BlobStore.sync_dirs`, and whoever commits it syncs this
file system once (``syncfs``) for its whole batch before the commit: the bytes and the rename are
on disk before the record naming them is, and one sync serves every upload of every worker in
the batch. A body larger than :data:`SMALL` is also fsynced on its own, off the commit's path, so
the batch's sync has little of it left to write. Without ``syncfs`` (not Linux) each file and its
directory are fsynced here and there is nothing left for the commit to sync.

After a crash a file whose record never committed may be partial. No record names it, and it is
never trusted: a later upload of the same digest checks the bytes already there and replaces
them unless they match. A pack is never appended to after a restart (a process makes a pack of
its own), so a torn tail is bytes that no record names; a packed chunk is checked against its
digest whenever it is read.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import suppress
from pathlib import Path
from typing import BinaryIO, Final

import anyio

from openspine.platform.storage.file_sync import HAVE_SYNCFS, fsync_directory

__all__ = ["INLINE", "BlobCorrupt", "BlobStore", "BlobTooLarge", "pack_of"]

READ_SIZE: Final = 256 * 1024
#: Bodies up to this size are written in one go (one worker-thread hop, not one per piece).
SMALL: Final = 1024 * 1024
#: Bodies up to this size are written by the event loop itself when the commit syncs them:
#: one file created in its own directory and written to the page cache costs less than the
#: hand-over to a worker thread and back (ADR 0017). Larger ones, and any that must be fsynced
#: here, are written by a worker thread.
INLINE: Final = 64 * 1024
#: A blob younger than this is never deleted by the purge (an upload may be about to name it).
PURGE_GRACE_SECONDS: Final = 3600
#: A process starts a new pack past this size (and every hour).
PACK_ROLL_BYTES: Final = 256 * 1024 * 1024
PACKS: Final = "packs"
#: ``<digest>@<pack>:<offset>:<size>``; a pack's name is ``<UTC hour>-<random hex>``.
_PACKED = re.compile(r"([0-9a-f]{64})@([0-9]{10}-[0-9a-f]{16}):([0-9]+):([0-9]+)")
_PACK_NAME = re.compile(r"[0-9]{10}-[0-9a-f]{16}")


class BlobTooLarge(Exception):
    pass


class BlobCorrupt(OSError):
    """A packed chunk's bytes are missing or do not match its digest."""


def pack_of(reference: str) -> str | None:
    """The pack holding a chunk, or ``None`` for a chunk in a file of its own."""
    return reference[65:92] if len(reference) > 64 and reference[64] == "@" else None


class _Pack:
    """The pack file this process appends to: only its event loop writes it."""

    __slots__ = ("fd", "hour", "name", "offset", "pid")

    def __init__(self, directory: str, hour: str) -> None:
        self.name = f"{hour}-{uuid.uuid4().hex[:16]}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        self.fd = os.open(f"{directory}/{self.name}", flags, 0o644)
        self.hour = hour
        self.offset = 0
        self.pid = os.getpid()


class BlobStore:
    def __init__(
        self, root: Path, *, sync_by_commit: bool = HAVE_SYNCFS, pack_small: bool = True
    ) -> None:
        self._root = root
        self._root_text = os.fspath(root)
        self._tmp = root / "tmp"
        self._tmp.mkdir(parents=True, exist_ok=True)
        self._packs = os.path.join(self._root_text, PACKS)
        os.makedirs(self._packs, exist_ok=True)
        self._sync_by_commit = sync_by_commit
        #: Packs need the commit's sync: an append of its own would fsync the whole pack.
        self._pack_small = pack_small and sync_by_commit
        self._pack: _Pack | None = None
        #: What a write set naming a new blob must carry (``WriteSet.sync_dirs``).
        self.sync_dirs: tuple[str, ...] = (str(root),) if sync_by_commit else ()

    def path(self, digest: str) -> Path:
        return Path(self._file(digest))

    def _file(self, digest: str) -> str:
        """The blob's path as a string: ``pathlib`` costs more than the write of a small body."""
        return f"{self._root_text}/{digest[:2]}/{digest[2:4]}/{digest}"

    async def put(self, pieces: AsyncIterator[bytes], max_bytes: int) -> tuple[str, int]:
        """Store a stream; return its reference and size. Past ``max_bytes``: raise, keep
        nothing (a chunk too large for a pack is never appended to one).

        The blob is durable once a write set carrying :attr:`sync_dirs` has committed.
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
        if self._pack_small and size <= INLINE:
            return self._append(data, digest), size
        if self._sync_by_commit and size <= INLINE:
            self._put_small(data, digest)
        else:
            await anyio.to_thread.run_sync(self._put_small, data, digest)
        return digest, size

    def _append(self, data: bytes, digest: str) -> str:
        """Append a small body to this process's pack; its reference."""
        hour = time.strftime("%Y%m%d%H", time.gmtime())
        pack = self._pack
        if (
            pack is None
            or pack.hour != hour
            or pack.offset >= PACK_ROLL_BYTES
            or pack.pid != os.getpid()  # a forked child: the parent's pack stays the parent's
        ):
            pack = self._roll(hour)
        offset = pack.offset
        try:
            written = os.pwrite(pack.fd, data, offset)
        except OSError:
            self._close_pack()  # where its end is is no longer known: the next body starts anew
            raise
        if written != len(data):
            self._close_pack()
            raise OSError(f"a short write to pack {pack.name} ({written} of {len(data)} bytes)")
        pack.offset = offset + written
        return f"{digest}@{pack.name}:{offset}:{written}"

    def _roll(self, hour: str) -> _Pack:
        self._close_pack()
        self._pack = _Pack(self._packs, hour)
        return self._pack

    def _close_pack(self) -> None:
        """Forget the current pack; close it unless it is a parent process's (after a fork)."""
        pack, self._pack = self._pack, None
        if pack is not None and pack.pid == os.getpid():
            os.close(pack.fd)

    def close(self) -> None:
        """Close this process's pack (a new one is started by the next small body)."""
        self._close_pack()

    def _put_small(self, data: bytes, digest: str) -> None:
        """A body whose address is known before its first byte is written there, in place.

        No temporary file and no rename: a new blob costs one file creation in its own
        directory (the shared temporary directory was a point of contention between every
        upload of every worker, ADR 0017). An interrupted write leaves a short file that no
        record names and that the next upload of the same bytes replaces (``_share``).
        """
        final = self._file(digest)
        try:
            fd = _create(final)
        except FileExistsError:
            if _share(final, digest, len(data)):
                return
            tmp = self._tmp / uuid.uuid4().hex  # an untrusted leftover: replaced whole
            with tmp.open("wb") as handle:
                handle.write(data)
                self._settle(handle)
            self._install(tmp, Path(final))
            return
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            self._settle(handle)
        if not self._sync_by_commit:
            fsync_directory(Path(final).parent)

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
            # Large: its own fsync now, so the commit's file-system sync has little left to do.
            await anyio.to_thread.run_sync(_flush_and_fsync, handle)
            await anyio.to_thread.run_sync(handle.close)
        except BaseException:
            handle.close()
            tmp.unlink(missing_ok=True)
            raise
        name = digest.hexdigest()
        await anyio.to_thread.run_sync(self._install_streamed, tmp, name, size)
        return name, size

    def _install_streamed(self, tmp: Path, digest: str, size: int) -> None:
        final = self.path(digest)
        if _share(final, digest, size):
            tmp.unlink(missing_ok=True)
            return
        self._install(tmp, final)

    def _settle(self, handle: BinaryIO) -> None:
        if not self._sync_by_commit:
            _flush_and_fsync(handle)

    def _install(self, tmp: Path, final: Path) -> None:
        """Move a complete file to its address, replacing whatever (untrusted) file was there."""
        try:
            os.replace(tmp, final)
        except FileNotFoundError:  # the first blob of its directory (the usual case has one)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
        if not self._sync_by_commit:
            fsync_directory(final.parent)

    def read_small(self, reference: str) -> bytes:
        """A body of up to :data:`INLINE` bytes, read by the caller's thread (the event loop):
        as with writing one, the hand-over to a worker thread costs more than the read."""
        if pack_of(reference) is not None:
            return self._read_packed(reference)
        with open(self._file(reference), "rb") as handle:
            return handle.read()

    def _read_packed(self, reference: str) -> bytes:
        found = _PACKED.fullmatch(reference)
        if found is None:
            raise BlobCorrupt(f"not a packed chunk's reference: {reference[:100]!r}")
        digest, pack, offset, size = found.groups()
        fd = os.open(os.path.join(self._packs, pack), os.O_RDONLY | os.O_CLOEXEC)
        try:
            data = os.pread(fd, int(size), int(offset))
        finally:
            os.close(fd)
        if len(data) != int(size) or hashlib.sha256(data).hexdigest() != digest:
            raise BlobCorrupt(f"pack {pack} does not hold the chunk at {offset}")
        return data

    async def read(self, reference: str) -> AsyncIterator[bytes]:
        if pack_of(reference) is not None:
            yield self._read_packed(reference)
            return
        digest = reference
        handle = await anyio.to_thread.run_sync(lambda: self.path(digest).open("rb"))
        try:
            while piece := await anyio.to_thread.run_sync(handle.read, READ_SIZE):
                yield piece
        finally:
            handle.close()

    def old_digests(self, shard: int, now: float) -> list[str]:
        """The digests under ``blobs/<shard as 2 hex digits>/`` whose files are older than
        the purge's grace period (a sweep walks the 256 shards one at a time)."""
        found: list[str] = []
        top = os.path.join(self._root_text, f"{shard:02x}")
        for middle in _entries(top):
            if not middle.is_dir(follow_symlinks=False):
                continue
            for entry in _entries(middle.path):
                try:
                    old = now - entry.stat(follow_symlinks=False).st_mtime >= PURGE_GRACE_SECONDS
                except FileNotFoundError:
                    continue
                if old and entry.is_file(follow_symlinks=False) and len(entry.name) == 64:
                    found.append(entry.name)
        return found

    def remove_old_temporary(self, now: float) -> int:
        """Remove what interrupted uploads left in ``blobs/tmp`` longer than the grace period."""
        removed = 0
        for entry in _entries(os.fspath(self._tmp)):
            try:
                if now - entry.stat(follow_symlinks=False).st_mtime >= PURGE_GRACE_SECONDS:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def old_packs(self, now: float) -> list[str]:
        """The packs not appended to for longer than the purge's grace period.

        A process appends to a pack only within the hour its name gives, so an old pack is one
        that no upload is writing to, or about to name.
        """
        found: list[str] = []
        for entry in _entries(self._packs):
            if not _PACK_NAME.fullmatch(entry.name):
                continue
            try:
                if now - entry.stat(follow_symlinks=False).st_mtime >= PURGE_GRACE_SECONDS:
                    found.append(entry.name)
            except FileNotFoundError:
                continue
        return found

    def delete_pack_if_stale(self, name: str) -> bool:
        """Delete a pack that no message names (the caller has looked) and that nothing has
        been appended to within the grace period; whether it was deleted."""
        if not _PACK_NAME.fullmatch(name) or (self._pack is not None and self._pack.name == name):
            return False
        path = os.path.join(self._packs, name)
        try:
            if time.time() - os.stat(path).st_mtime < PURGE_GRACE_SECONDS:
                return False
            os.unlink(path)
        except FileNotFoundError:
            return False
        return True

    def delete_if_stale(self, digest: str) -> bool:
        """Delete the blob if it is older than the grace period; whether it was deleted.

        The caller has found no record naming it, but an upload of the same bytes may be
        sharing it at this moment: ``_share`` makes the file fresh, then the upload commits a
        record that names it. A ``stat`` and then an ``unlink`` would leave a window between
        them in which the upload refreshes the file and relies on it, and the file goes.
        So the file first leaves its address (a rename in one step), and only then is its age
        looked at again, on the file itself:

        - still old: no upload refreshed it before the rename, and any later upload finds the
          address empty (or its ``utime`` fails) and writes the bytes anew. It is deleted.
        - fresh: an upload refreshed it between the first look and the rename, and relies on
          it. It is put back whole, over anything another upload has begun to write there
          meanwhile (the same bytes, perhaps not all of them yet).
        """
        path = self._file(digest)
        try:
            if time.time() - os.stat(path).st_mtime < PURGE_GRACE_SECONDS:
                return False
            condemned = os.fspath(self._tmp / f"condemned-{uuid.uuid4().hex}")
            os.rename(path, condemned)
        except FileNotFoundError:
            return False
        try:
            fresh = time.time() - os.stat(condemned).st_mtime < PURGE_GRACE_SECONDS
        except FileNotFoundError:  # another sweep cleared it from blobs/tmp: it was old
            return True
        if fresh:
            os.replace(condemned, path)
            if not self._sync_by_commit:
                fsync_directory(Path(path).parent)
            return False
        with suppress(FileNotFoundError):
            os.unlink(condemned)
        return True


def _entries(directory: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as entries:
            return list(entries)
    except FileNotFoundError:
        return []


def _create(path: str) -> int:
    """A new file at ``path`` (and its directory, the first time), open for writing."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    try:
        return os.open(path, flags, 0o666)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return os.open(path, flags, 0o666)


def _flush_and_fsync(handle: BinaryIO) -> None:
    handle.flush()
    os.fsync(handle.fileno())


def _share(final: str | Path, digest: str, size: int) -> bool:
    """Whether ``final`` already holds these bytes; if so it is made fresh for the purge."""
    if not _holds(final, digest, size):
        return False
    try:
        os.utime(final)  # the purge's grace period starts again
    except FileNotFoundError:  # purged meanwhile: the caller writes it again
        return False
    return True


def _holds(path: str | Path, digest: str, size: int) -> bool:
    """Whether ``path`` holds exactly the bytes of ``digest`` (a crash may have left less)."""
    try:
        if os.stat(path).st_size != size:
            return False
        check = hashlib.sha256()
        with open(path, "rb") as handle:
            while piece := handle.read(READ_SIZE):
                check.update(piece)
    except FileNotFoundError:
        return False
    return check.hexdigest() == digest
