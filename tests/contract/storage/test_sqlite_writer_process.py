"""The one writer process of a served SQLite store (ADR 0015): workers' write sets go to it.

Each ``SqliteStore`` here stands for one worker process; the writer process is the real one,
started as ``openspine serve`` starts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import msgspec
import pytest

from openspine.platform.audit.verify import verify_chain
from openspine.platform.storage import sqlite_writer
from openspine.platform.storage.migrate import upgrade
from openspine.platform.storage.ports import (
    AuditChain,
    ConsumeNonce,
    NonceReplayed,
    PutResource,
    StoreUnavailable,
    VersionConflict,
    WriteSet,
)
from openspine.platform.storage.sqlite import SqliteStore
from openspine.platform.storage.sqlite_writer import (
    MAX_FRAME,
    WriterProcess,
    WriterSupervisor,
    frame,
    frames,
    start_writer_process,
)
from tests.contract.storage.records import audit_event, bump_counter, create_thing

pytestmark = pytest.mark.anyio


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    path = tmp_path / "served.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def writer(store_path: Path) -> Iterator[WriterProcess]:
    started = start_writer_process(store_path, synchronous="FULL", max_batch=16)
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
async def workers(store_path: Path, writer: WriterProcess) -> AsyncIterator[list[SqliteStore]]:
    stores = [SqliteStore(store_path, writer_socket=writer.socket_path) for _ in range(2)]
    for store in stores:
        await store.start()
    try:
        yield stores
    finally:
        for store in stores:
            await store.close()


async def test_workers_and_a_local_writer_take_turns_and_lose_nothing(
    store_path: Path, workers: list[SqliteStore]
) -> None:
    # A third store without the link commits in-process, as a bulk load or an index merge does;
    # it takes turns with the writer process through the writer lock.
    local = SqliteStore(store_path, max_batch=8)
    await local.start()
    stores = [*workers, local]
    try:
        await local.write(WriteSet(puts=[PutResource("Thing", "counter", 1, b"1", None)]))

        outcomes = await asyncio.gather(
            *(bump_counter(stores[i % 3]) for i in range(60)),
            *(create_thing(stores[i % 3], f"t{i}") for i in range(300)),
            *(workers[i % 2].write(WriteSet(audit=[audit_event()])) for i in range(300)),
        )
        wins = sum(1 for outcome in outcomes[:60] if outcome is True)
        counter = await workers[0].get("Thing", "counter")
        assert counter is not None
        assert counter.version == 1 + wins  # every winner counted, no lost update
        assert await workers[1].count("Thing") == 301
        changes = await verify_chain(local)
        assert changes.ok
        assert changes.checked == wins + 300
        reads = await verify_chain(local, AuditChain.ACCESS)  # events alone (ADR 0025)
        assert reads.ok
        assert reads.checked == 300
        assert all(store.writes_through_writer_process for store in workers)
    finally:
        await local.close()


async def test_a_refused_write_set_comes_back_as_its_own_error(
    workers: list[SqliteStore],
) -> None:
    first, second = workers
    nonce = ConsumeNonce("issuer", "n-1", 2**31)
    await first.write(WriteSet(nonces=[nonce]))
    with pytest.raises(NonceReplayed):
        await second.write(WriteSet(nonces=[nonce], audit=[audit_event()]))
    await first.write(WriteSet(puts=[PutResource("Thing", "a", 1, b"{}", None)]))
    with pytest.raises(VersionConflict):
        await second.write(WriteSet(puts=[PutResource("Thing", "a", 3, b"{}", 2)]))
    assert (await second.audit_head())[0] == 0  # the refused write sets left no audit event


async def test_a_worker_falls_back_to_its_own_writer_when_the_writer_process_dies(
    workers: list[SqliteStore], writer: WriterProcess
) -> None:
    store = workers[0]
    await store.write(WriteSet(audit=[audit_event()]))
    assert store.writes_through_writer_process
    os.kill(writer.process.pid, signal.SIGKILL)
    writer.process.wait()
    # The first write after the loss may be the one that finds it: its outcome is unknown,
    # so it is refused (503), never retried behind the caller's back.
    with contextlib.suppress(StoreUnavailable):
        await store.write(WriteSet(audit=[audit_event()]))
    written = await store.write(WriteSet(puts=[PutResource("Thing", "after", 1, b"{}", None)]))
    assert not store.writes_through_writer_process
    assert written.audit_seqs == ()
    assert await store.get("Thing", "after") is not None
    assert (await verify_chain(store)).ok


async def test_the_writer_process_drops_a_link_that_sends_garbage(
    workers: list[SqliteStore], writer: WriterProcess
) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as rogue:
        rogue.connect(str(writer.socket_path))
        rogue.sendall(struct.pack("!I", 5) + b"\xc1\xc1\xc1\xc1\xc1")  # not MessagePack
        rogue.settimeout(5)
        assert rogue.recv(1) == b""  # closed by the writer process
    written = await workers[0].write(WriteSet(audit=[audit_event()]))
    assert written.audit_seqs == (1,)
    assert workers[0].writes_through_writer_process


def test_frames_are_read_whole_across_chunks_and_oversized_ones_refused() -> None:
    decoder = msgspec.msgpack.Decoder(tuple[int, WriteSet])
    wire = frame((1, WriteSet(audit=[audit_event()]))) + frame((2, WriteSet()))
    buffer = bytearray()
    seen = []
    for i in range(0, len(wire), 7):
        buffer += wire[i : i + 7]
        seen += [number for number, _ in frames(buffer, decoder)]
    assert seen == [1, 2]
    assert buffer == bytearray()
    with pytest.raises(ValueError, match="too large"):
        frames(bytearray(struct.pack("!I", MAX_FRAME + 1)), decoder)


def test_the_writer_process_refuses_a_missing_store_and_cleans_up(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable):
        start_writer_process(tmp_path / "missing.db", synchronous="FULL", max_batch=8)
    assert not (tmp_path / "missing.db").exists()


def test_stopping_the_writer_process_removes_its_socket(store_path: Path) -> None:
    started = start_writer_process(store_path, synchronous="FULL", max_batch=8)
    assert started.socket_path.exists()
    assert started.socket_path.parent.stat().st_mode & 0o777 == 0o700
    started.stop()
    assert started.process.returncode == 0
    assert not started.socket_path.parent.exists()


def test_the_writer_process_leaves_when_its_parent_is_killed(store_path: Path) -> None:
    # The parent stands for `openspine serve`, killed with SIGKILL: no chance to stop the writer.
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path;"
            "from openspine.platform.storage.sqlite_writer import start_writer_process;"
            f"w = start_writer_process(Path({str(store_path)!r}), synchronous='FULL', max_batch=8);"
            "print(w.process.pid, w.socket_path, flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    pid, socket_path = parent.stdout.readline().split()
    parent.stdout.close()
    assert Path(socket_path).exists()
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while Path(socket_path).parent.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(socket_path).parent.exists()  # it noticed, and removed its socket
    while _running(int(pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(int(pid))


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan is reaped by whatever PID 1 the machine has)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


async def test_without_a_writer_process_a_worker_writes_itself(
    store_path: Path, tmp_path: Path
) -> None:
    store = SqliteStore(store_path, writer_socket=tmp_path / "nobody-listens.sock")
    await store.start()
    try:
        written = await store.write(WriteSet(audit=[audit_event()]))  # nothing was sent: no 503
        assert written.audit_seqs == (1,)
        assert not store.writes_through_writer_process
    finally:
        await store.close()


async def test_a_stop_signal_lets_linked_workers_finish_their_writes(store_path: Path) -> None:
    writer = start_writer_process(store_path, synchronous="FULL", max_batch=8)
    try:
        store = SqliteStore(store_path, writer_socket=writer.socket_path)
        await store.start()
        try:
            await store.write(WriteSet(audit=[audit_event()]))
            writer.process.send_signal(signal.SIGTERM)  # as a service manager stops the group
            await asyncio.sleep(0.7)  # more than one of its polls
            written = await store.write(WriteSet(audit=[audit_event()]))
            assert written.audit_seqs == (2,)
            assert store.writes_through_writer_process
            assert writer.process.poll() is None
        finally:
            await store.close()
        assert writer.process.wait(timeout=5) == 0  # the last link gone, it leaves
    finally:
        writer.stop()


async def test_a_worker_links_again_to_a_restarted_writer_process(
    workers: list[SqliteStore],
    writer: WriterProcess,
    store_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sqlite_writer, "RELINK_SECONDS", 0.0)
    store = workers[0]
    await store.write(WriteSet(audit=[audit_event()]))
    os.kill(writer.process.pid, signal.SIGKILL)
    writer.process.wait()
    with contextlib.suppress(StoreUnavailable):  # the write that finds the loss: unknown outcome
        await store.write(WriteSet(audit=[audit_event()]))
    # No writer process: this write is this worker's own, the link tried again and refused.
    await store.write(WriteSet(audit=[audit_event()]))
    assert not store.writes_through_writer_process
    restarted = start_writer_process(
        store_path, synchronous="FULL", max_batch=16, socket_path=writer.socket_path
    )
    try:
        written = await store.write(WriteSet(audit=[audit_event()]))
        assert store.writes_through_writer_process
        assert written.audit_seqs
        assert (await verify_chain(store)).ok
    finally:
        restarted.stop()


def test_serve_starts_a_writer_process_again_when_it_dies(store_path: Path) -> None:
    supervisor = WriterSupervisor(store_path, synchronous="FULL", max_batch=16)
    first = supervisor.current.process
    try:
        first.kill()
        first.wait()
        deadline = time.monotonic() + 15
        while supervisor.current.process is first or not supervisor.socket_path.exists():
            assert time.monotonic() < deadline, "the writer process was not started again"
            time.sleep(0.05)
        assert supervisor.current.process.poll() is None
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.connect(str(supervisor.socket_path))  # it listens where its predecessor did
    finally:
        supervisor.stop()
    assert supervisor.current.process.poll() is not None
    assert not supervisor.socket_path.exists()


def test_a_writer_process_asked_to_stop_is_not_started_again(store_path: Path) -> None:
    # A stop of the whole process group reaches the writer before `serve` calls stop().
    supervisor = WriterSupervisor(store_path, synchronous="FULL", max_batch=16)
    first = supervisor.current.process
    try:
        first.send_signal(signal.SIGTERM)
        assert first.wait(10) == 0
        time.sleep(1.5)  # longer than the first restart delay
        assert supervisor.current.process is first
    finally:
        supervisor.stop()
    assert not supervisor.socket_path.exists()
