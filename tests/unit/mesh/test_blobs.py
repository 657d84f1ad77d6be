"""The blob store: content addresses, untrusted leftovers of a crash, and who syncs what."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import pytest

from openspine.mesh import blobs
from openspine.mesh.blobs import BlobStore, BlobTooLarge

pytestmark = pytest.mark.anyio


async def pieces(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def files(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()]


def thread_hops(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The functions handed to a worker thread from now on, in order."""
    hops: list[object] = []
    real = anyio.to_thread.run_sync

    async def counting(func: Callable[..., object], *args: object) -> object:
        hops.append(func)
        return await real(func, *args)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counting)
    return hops


async def read_all(store: BlobStore, digest: str) -> bytes:
    return b"".join([piece async for piece in store.read(digest)])


@pytest.mark.parametrize("sync_by_commit", [True, False])
async def test_a_body_is_stored_at_its_digest(tmp_path: Path, sync_by_commit: bool) -> None:
    store = BlobStore(tmp_path, sync_by_commit=sync_by_commit, pack_small=False)
    digest, size = await store.put(pieces(b"hello ", b"world"), 1000)
    assert digest == hashlib.sha256(b"hello world").hexdigest()
    assert size == 11
    assert store.path(digest) == tmp_path / digest[:2] / digest[2:4] / digest
    assert await read_all(store, digest) == b"hello world"
    assert list((tmp_path / "tmp").iterdir()) == []
    # Deferred durability hands the commit the directory to sync; otherwise nothing is left.
    assert store.sync_dirs == ((str(tmp_path),) if sync_by_commit else ())


async def test_without_the_commit_syncing_each_file_is_fsynced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    store = BlobStore(tmp_path, sync_by_commit=False, pack_small=False)
    await store.put(pieces(b"durable by itself"), 1000)
    assert len(synced) == 2  # the file, then its directory


@pytest.mark.parametrize("leftover", [b"hello w", b"hello_world"], ids=["shorter", "same-size"])
async def test_a_file_left_by_a_crash_is_replaced_not_trusted(
    tmp_path: Path, leftover: bytes
) -> None:
    store = BlobStore(tmp_path, pack_small=False)
    digest = hashlib.sha256(b"hello world").hexdigest()
    store.path(digest).parent.mkdir(parents=True)
    store.path(digest).write_bytes(leftover)
    assert (await store.put(pieces(b"hello world"), 1000))[0] == digest
    assert await read_all(store, digest) == b"hello world"


async def test_the_same_bytes_share_one_file_made_fresh_for_the_purge(tmp_path: Path) -> None:
    store = BlobStore(tmp_path, pack_small=False)
    digest, _ = await store.put(pieces(b"twice"), 1000)
    os.utime(store.path(digest), (1, 1))
    inode = store.path(digest).stat().st_ino
    await store.put(pieces(b"twice"), 1000)
    assert store.path(digest).stat().st_ino == inode
    assert store.path(digest).stat().st_mtime > 1
    assert not store.delete_if_stale(digest)


async def test_a_large_body_streams_and_a_bad_leftover_is_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(blobs, "SMALL", 16)
    store = BlobStore(tmp_path, pack_small=False)
    body = [bytes([i]) * 10 for i in range(8)]
    digest = hashlib.sha256(b"".join(body)).hexdigest()
    store.path(digest).parent.mkdir(parents=True)
    store.path(digest).write_bytes(b"partial")
    assert await store.put(pieces(*body), 1000) == (digest, 80)
    assert await read_all(store, digest) == b"".join(body)
    assert list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.parametrize("parts", [[b"x" * 11], [b"x" * 8, b"x" * 8, b"x" * 8]])
async def test_too_large_keeps_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parts: list[bytes]
) -> None:
    monkeypatch.setattr(blobs, "SMALL", 12)
    store = BlobStore(tmp_path, pack_small=False)
    with pytest.raises(BlobTooLarge):
        await store.put(pieces(*parts), 10 if len(parts) == 1 else 20)
    assert files(tmp_path) == []


async def test_a_new_small_body_is_written_in_place_without_a_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    renamed: list[object] = []
    real_replace = os.replace

    def recording_replace(source: Path, target: Path) -> None:
        renamed.append(target)
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", recording_replace)
    store = BlobStore(tmp_path, pack_small=False)
    digest, _ = await store.put(pieces(b"first of its directory"), 1000)
    await store.put(pieces(b"another"), 1000)
    assert renamed == []
    assert await read_all(store, digest) == b"first of its directory"


@pytest.mark.parametrize(
    ("size", "sync_by_commit", "threaded"),
    [
        (blobs.INLINE, True, False),  # small, synced by the commit: written by the event loop
        (blobs.INLINE + 1, True, True),
        (100, False, True),  # fsynced here: never on the event loop
    ],
)
async def test_only_small_bodies_synced_by_the_commit_skip_the_worker_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int, sync_by_commit: bool, threaded: bool
) -> None:
    hops = thread_hops(monkeypatch)
    store = BlobStore(tmp_path, sync_by_commit=sync_by_commit, pack_small=False)
    digest, _ = await store.put(pieces(b"x" * size), blobs.SMALL)
    assert (len(hops) > 0) is threaded
    assert store.path(digest).read_bytes() == b"x" * size


def _old_blob(store: BlobStore, body: bytes) -> str:
    digest = hashlib.sha256(body).hexdigest()
    store.path(digest).parent.mkdir(parents=True, exist_ok=True)
    store.path(digest).write_bytes(body)
    os.utime(store.path(digest), (1, 1))
    return digest


def _during_rename(
    monkeypatch: pytest.MonkeyPatch,
    before: Callable[[str], object] = lambda source: None,
    after: Callable[[], object] = lambda: None,
) -> None:
    """Let an upload act just before and just after the deletion moves the file away."""
    rename = os.rename

    def interleaved(source: str, target: str) -> None:
        before(source)
        rename(source, target)
        after()

    monkeypatch.setattr(os, "rename", interleaved)


def test_an_old_unshared_blob_is_deleted_and_leaves_nothing_behind(tmp_path: Path) -> None:
    store = BlobStore(tmp_path, pack_small=False)
    digest = _old_blob(store, b"old and unnamed")
    assert store.delete_if_stale(digest)
    assert not store.path(digest).exists()
    assert list((tmp_path / "tmp").iterdir()) == []


def test_an_upload_sharing_the_blob_while_it_is_deleted_keeps_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The upload refreshes the file after the purge's first look and before it moves."""
    store = BlobStore(tmp_path, pack_small=False)
    body = b"shared at the last moment"
    digest = _old_blob(store, body)
    # The upload finds the file, checks it and makes it fresh.
    _during_rename(monkeypatch, before=lambda source: store._put_small(body, digest))
    assert not store.delete_if_stale(digest)
    assert store.path(digest).read_bytes() == body
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_kept_blob_goes_back_whole_over_a_new_upload_still_being_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = BlobStore(tmp_path, pack_small=False)
    body = b"whole body of the shared blob"
    digest = _old_blob(store, body)
    _during_rename(
        monkeypatch,
        before=os.utime,  # an upload shared it just before the move
        after=lambda: store.path(digest).write_bytes(body[:5]),  # another began writing anew
    )
    assert not store.delete_if_stale(digest)
    assert store.path(digest).read_bytes() == body


async def test_an_upload_after_the_blob_left_its_address_writes_it_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = BlobStore(tmp_path, pack_small=False)
    body = b"deleted, then sent again"
    digest = _old_blob(store, body)
    uploaded: list[str] = []

    def upload() -> None:
        store._put_small(body, digest)
        uploaded.append(digest)

    _during_rename(monkeypatch, after=upload)
    assert store.delete_if_stale(digest)
    assert uploaded == [digest]
    assert await read_all(store, digest) == body


# -- packs: small bodies appended to the process's pack (ADR 0021) ---------------------------


async def test_small_bodies_share_the_processs_pack_and_read_back_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hops = thread_hops(monkeypatch)
    store = BlobStore(tmp_path, sync_by_commit=True)
    first, size = await store.put(pieces(b"hello ", b"world"), 1000)
    second, _ = await store.put(pieces(b"x" * blobs.INLINE), blobs.SMALL)
    digest = hashlib.sha256(b"hello world").hexdigest()
    pack = blobs.pack_of(first)
    assert pack is not None
    assert first == f"{digest}@{pack}:0:11"
    assert size == 11
    assert blobs.pack_of(second) == pack
    assert second.endswith(f":11:{blobs.INLINE}")
    assert hops == []  # appended by the event loop itself
    assert files(tmp_path) == [tmp_path / "packs" / pack]  # no file of its own, no rename
    assert store.read_small(first) == b"hello world"
    assert await read_all(store, second) == b"x" * blobs.INLINE
    assert store.sync_dirs == (str(tmp_path),)  # the commit syncs the appends


@pytest.mark.parametrize(
    ("size", "sync_by_commit"), [(blobs.INLINE + 1, True), (100, False)], ids=["large", "no-syncfs"]
)
async def test_larger_bodies_and_those_fsynced_here_get_files_of_their_own(
    tmp_path: Path, size: int, sync_by_commit: bool
) -> None:
    store = BlobStore(tmp_path, sync_by_commit=sync_by_commit)
    reference, _ = await store.put(pieces(b"y" * size), blobs.SMALL)
    assert reference == hashlib.sha256(b"y" * size).hexdigest()
    assert blobs.pack_of(reference) is None
    assert list((tmp_path / "packs").iterdir()) == []


async def test_a_process_starts_a_new_pack_each_hour_past_the_size_and_after_a_fork(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = BlobStore(tmp_path)
    first = blobs.pack_of((await store.put(pieces(b"one"), 100))[0])
    assert store._pack is not None
    store._pack.hour = "2000010100"  # the hour has turned
    second = blobs.pack_of((await store.put(pieces(b"two"), 100))[0])
    monkeypatch.setattr(blobs, "PACK_ROLL_BYTES", 3)
    third = blobs.pack_of((await store.put(pieces(b"three"), 100))[0])
    assert len({first, second, third}) == 3
    parent = os.getpid()
    monkeypatch.setattr(blobs, "PACK_ROLL_BYTES", 1000)
    monkeypatch.setattr(os, "getpid", lambda: parent + 1)  # the child of a fork
    fourth = blobs.pack_of((await store.put(pieces(b"four"), 100))[0])
    assert fourth not in {first, second, third}
    assert os.fstat(store._pack.fd).st_size == 4  # the child's own pack


async def test_a_failed_or_short_append_never_reuses_its_pack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = BlobStore(tmp_path)
    first = blobs.pack_of((await store.put(pieces(b"before"), 100))[0])
    real = os.pwrite
    monkeypatch.setattr(os, "pwrite", lambda fd, data, offset: real(fd, data[:2], offset))
    with pytest.raises(OSError, match="short write"):
        await store.put(pieces(b"torn"), 100)
    monkeypatch.setattr(os, "pwrite", real)
    after, _ = await store.put(pieces(b"after"), 100)
    assert blobs.pack_of(after) != first
    assert store.read_small(after) == b"after"


async def test_a_packed_chunk_that_does_not_match_its_digest_is_refused(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    reference, _ = await store.put(pieces(b"the original bytes"), 100)
    pack = tmp_path / "packs" / str(blobs.pack_of(reference))
    pack.write_bytes(b"THE original bytes")
    with pytest.raises(blobs.BlobCorrupt):
        store.read_small(reference)
    pack.write_bytes(b"short")
    with pytest.raises(blobs.BlobCorrupt):
        store.read_small(reference)
    with pytest.raises(blobs.BlobCorrupt):
        store.read_small(reference.replace("@", "@../"))


async def test_only_old_packs_other_than_the_current_one_are_deleted(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    old = str(blobs.pack_of((await store.put(pieces(b"old"), 100))[0]))
    store.close()
    young = str(blobs.pack_of((await store.put(pieces(b"young"), 100))[0]))
    store.close()
    current = str(blobs.pack_of((await store.put(pieces(b"current"), 100))[0]))
    packs = tmp_path / "packs"
    for name in (old, current):
        os.utime(packs / name, (1, 1))
    (packs / "not-a-pack").write_bytes(b"")
    os.utime(packs / "not-a-pack", (1, 1))
    assert sorted(store.old_packs(time.time())) == sorted([old, current])
    assert not store.delete_pack_if_stale(current)  # this process is still appending to it
    assert not store.delete_pack_if_stale(young)
    assert not store.delete_pack_if_stale("not-a-pack")
    assert store.delete_pack_if_stale(old)
    assert sorted(p.name for p in packs.iterdir()) == sorted([young, current, "not-a-pack"])
