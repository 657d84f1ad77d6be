"""One writer process for every web worker on a SQLite store (ADR 0015).

``openspine serve`` starts it next to granian's workers. Each worker sends its write sets over a
Unix socket; the writer process group-commits everything waiting from all of them in one
transaction (:class:`.sqlite_commit.Committer`) and answers each write only after COMMIT. It is
the only process that writes on the request path, so its batches hold every worker's waiting
writes, it never waits for another worker's turn, and nothing in it competes for its GIL while
it holds the store's writer lock. Workers still commit their exclusive jobs (bulk load, index
merge) themselves, under the same lock; a worker whose link breaks falls back to its own writer
thread (:class:`.sqlite.SqliteStore`).

The wire: frames of a 4-byte big-endian length and MessagePack, decoded by msgspec into typed
values only (never arbitrary objects): ``(request number, write set)`` one way and ``(request
number, audit sequence numbers, error kind, error text)`` the other. The socket lives in a
directory only the serving user can open (mode 0700); the link never leaves the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import itertools
import logging
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeVar

import msgspec

from openspine.platform.observability import LogEvent, log_event
from openspine.platform.storage.ports import (
    AlreadyExists,
    IdempotencyKeyTaken,
    NonceReplayed,
    StoreError,
    StoreUnavailable,
    VersionConflict,
    WriteResult,
    WriteSet,
)
from openspine.platform.storage.sqlite_commit import Committer

__all__ = [
    "RELINK_SECONDS",
    "WriterLink",
    "WriterProcess",
    "WriterSupervisor",
    "WriterUnreachable",
    "start_writer_process",
]

_HEADER: Final = struct.Struct("!I")
#: A frame larger than this is refused: write sets are resources, not message bodies (those go to
#: the blob store).
MAX_FRAME: Final = 64 * 1024 * 1024
_READY: Final = b"ready\n"
_POLL_SECONDS: Final = 0.5
#: How long a worker whose link failed writes through its own thread before linking again.
RELINK_SECONDS: Final = 5.0
#: After a stop signal, how long the writer goes on committing for workers still linked.
DRAIN_SECONDS: Final = 8.0


T = TypeVar("T")
Request = tuple[int, WriteSet]
#: (request number, audit sequence numbers, error kind ("" when written), error text)
Reply = tuple[int, tuple[int, ...], str, str]
_ERRORS: Final[dict[str, type[StoreError]]] = {
    cls.__name__: cls
    for cls in (
        AlreadyExists,
        IdempotencyKeyTaken,
        NonceReplayed,
        StoreUnavailable,
        VersionConflict,
    )
}
_encoder = msgspec.msgpack.Encoder()
_requests = msgspec.msgpack.Decoder(Request)
_replies = msgspec.msgpack.Decoder(Reply)


def frame(value: Request | Reply) -> bytes:
    payload = _encoder.encode(value)
    return _HEADER.pack(len(payload)) + payload


def reply(number: int, outcome: object) -> Reply:
    if isinstance(outcome, WriteResult):
        return (number, outcome.audit_seqs, "", "")
    if isinstance(outcome, StoreError) and type(outcome).__name__ in _ERRORS:
        return (number, (), type(outcome).__name__, str(outcome))
    return (number, (), StoreUnavailable.__name__, "the store refused the transaction")


def outcome(answer: Reply) -> WriteResult | StoreError:
    _number, seqs, kind, text = answer
    if not kind:
        return WriteResult(seqs)
    return _ERRORS.get(kind, StoreUnavailable)(text)


def frames(buffer: bytearray, decoder: msgspec.msgpack.Decoder[T]) -> list[T]:
    """Every complete frame in ``buffer``, decoded; what is left stays in ``buffer``."""
    found: list[T] = []
    start = 0
    end = len(buffer)
    with memoryview(buffer) as view:
        while end - start >= _HEADER.size:
            (size,) = _HEADER.unpack_from(view, start)
            if size > MAX_FRAME:
                raise ValueError("frame too large")
            body_start = start + _HEADER.size
            if end - body_start < size:
                break
            found.append(decoder.decode(view[body_start : body_start + size]))
            start = body_start + size
    del buffer[:start]
    return found


# -- the writer process ---------------------------------------------------------------------------


#: A worker's write set waiting for the writer: the link it came on and its request number.
_Queued = tuple[socket.socket, int, WriteSet]


class _Links:
    """The workers' links, read by the writer's one thread as they become readable.

    One thread does everything: it waits for any link (or the listener) to be readable, reads
    what each has sent, commits all of it as one batch, and answers. While it commits, new
    write sets wait in the kernel's socket buffers, so the next wait returns at once with the
    next batch. There is no thread per link and no queue between them (ADR 0017): those cost a
    thread wake-up and a GIL hand-over for every write set.
    """

    def __init__(self, listener: socket.socket) -> None:
        self._listener = listener
        self._selector = selectors.DefaultSelector()
        self._selector.register(listener, selectors.EVENT_READ, None)
        self._buffers: dict[socket.socket, bytearray] = {}

    @property
    def linked(self) -> int:
        return len(self._buffers)

    def read(self, timeout: float | None) -> list[_Queued]:
        """Write sets sent since the last call; waits up to ``timeout`` for the first."""
        found: list[_Queued] = []
        for key, _events in self._selector.select(timeout):
            if key.data is None:
                self._accept()
                continue
            peer: socket.socket = key.fileobj  # type: ignore[assignment]
            buffer = self._buffers[peer]
            try:
                chunk = peer.recv(1 << 16)
                if not chunk:
                    self.close(peer)
                    continue
                buffer += chunk
                found.extend((peer, number, writes) for number, writes in frames(buffer, _requests))
            except (OSError, ValueError, msgspec.DecodeError) as exc:
                log_event(LogEvent.WRITER_LINK_CLOSED, logging.WARNING, error=type(exc).__name__)
                self.close(peer)
        return found

    def answer(self, peer: socket.socket, answers: list[bytes]) -> None:
        if peer not in self._buffers:
            return  # the worker went away; its writes committed all the same
        try:
            peer.sendall(b"".join(answers))
        except OSError:
            self.close(peer)

    def _accept(self) -> None:
        try:
            peer, _ = self._listener.accept()
        except OSError:
            return
        self._buffers[peer] = bytearray()
        self._selector.register(peer, selectors.EVENT_READ, peer)

    def close(self, peer: socket.socket) -> None:
        if self._buffers.pop(peer, None) is None:
            return
        self._selector.unregister(peer)
        with suppress(OSError):
            peer.shutdown(socket.SHUT_RDWR)
        peer.close()

    def close_all(self) -> None:
        for peer in list(self._buffers):
            self.close(peer)
        self._selector.close()


def serve(store: Path, socket_path: Path, *, synchronous: str, max_batch: int) -> None:
    """Commit the workers' write sets until stopped, or until the process that started it is gone.

    SIGTERM or SIGINT (a service manager or Ctrl-C stops every process of the group at once)
    does not end it at once: workers still answering their last requests need their writes
    committed, so it goes on until no worker is linked, for at most ``DRAIN_SECONDS``.
    """
    parent = os.getppid()
    if not store.is_file():  # connecting would create an empty file
        raise SystemExit(f"no store at {store}: run `openspine migrate`")
    committer = Committer(store, synchronous=synchronous)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(socket_path))
    listener.listen(128)
    links = _Links(listener)
    stop_at: float | None = None

    def stop(*_: object) -> None:
        nonlocal stop_at
        stop_at = stop_at or time.monotonic()

    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, stop)
    sys.stdout.buffer.write(_READY)
    sys.stdout.flush()
    waiting: list[_Queued] = []
    try:
        while True:
            if stop_at is not None and (
                not links.linked or time.monotonic() - stop_at > DRAIN_SECONDS
            ):
                return
            # Nothing waiting: sleep until a link speaks (waking now and then to see whether
            # the process that started this one is still there, or a stop was asked for).
            waiting.extend(links.read(0 if waiting else _POLL_SECONDS))
            if not waiting:
                if os.getppid() != parent:
                    return
                continue
            batch, waiting = waiting[:max_batch], waiting[max_batch:]
            outcomes = committer.commit([writes for _peer, _number, writes in batch])
            replies: dict[socket.socket, list[bytes]] = {}
            for (peer, number, _writes), result in zip(batch, outcomes, strict=True):
                replies.setdefault(peer, []).append(frame(reply(number, result)))
            for peer, answers in replies.items():
                links.answer(peer, answers)
    finally:
        links.close_all()
        listener.close()
        committer.close()
        # Also when the process that started it was killed and cannot clean up.
        _remove_socket(socket_path)


def _remove_socket(socket_path: Path) -> None:
    with suppress(FileNotFoundError):
        socket_path.unlink()
    with suppress(OSError):
        socket_path.parent.rmdir()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="OpenSpine's SQLite writer process (ADR 0015)")
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--socket", type=Path, required=True)
    parser.add_argument("--synchronous", default="FULL")
    parser.add_argument("--max-batch", type=int, default=512)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    serve(args.store, args.socket, synchronous=args.synchronous, max_batch=args.max_batch)


@dataclass(slots=True)
class WriterProcess:
    """A started writer process and the socket it listens on."""

    process: subprocess.Popen[bytes]
    socket_path: Path

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        _remove_socket(self.socket_path)


def start_writer_process(
    store: Path, *, synchronous: str, max_batch: int, socket_path: Path | None = None
) -> WriterProcess:
    """Start the writer process for ``store``; return once it accepts connections.

    ``socket_path``: where a restarted writer listens (where its predecessor did); by default a
    new private one.
    """
    if socket_path is None:
        # A short private path: a Unix socket's path is limited to 107 bytes, and only the
        # serving user may connect (mkdtemp makes the directory 0700).
        socket_path = Path(tempfile.mkdtemp(prefix="openspine-writer-")) / "writer.sock"
    else:
        socket_path.parent.mkdir(mode=0o700, exist_ok=True)
        with suppress(FileNotFoundError):
            socket_path.unlink()  # what a killed predecessor could not remove
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module, no shell
        [
            sys.executable,
            "-m",
            "openspine.platform.storage.sqlite_writer",
            "--store",
            str(store),
            "--socket",
            str(socket_path),
            "--synchronous",
            synchronous,
            "--max-batch",
            str(max_batch),
        ],
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    process.stdout.close()
    started = WriterProcess(process, socket_path)
    if line != _READY:
        started.stop()
        raise StoreUnavailable("the writer process did not start")
    return started


class WriterSupervisor:
    """Runs the writer process for ``openspine serve`` and starts it again if it dies (exits
    with a signal or an error; one that was asked to stop exits 0 and is left stopped).

    Workers whose link broke write through their own writer threads meanwhile (taking turns
    with it by the store's lock, ADR 0014) and link to the new writer process on a later write
    (:data:`RELINK_SECONDS`). A writer that cannot start is tried again after 1, 2, 4 … 30 s.
    """

    def __init__(self, store: Path, *, synchronous: str, max_batch: int) -> None:
        self._start = functools.partial(
            start_writer_process, store, synchronous=synchronous, max_batch=max_batch
        )
        self.current = self._start()
        self.socket_path = self.current.socket_path
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._watch, name="openspine-writer-supervisor", daemon=True
        )
        self._thread.start()

    def _watch(self) -> None:
        delay = 1.0
        while True:
            code = self.current.process.wait()
            # A writer that exits 0 was stopped (SIGTERM or SIGINT, drained): when the whole
            # process group is being stopped it may see the signal before `serve` calls stop().
            if self._stopping.is_set() or code == 0:
                return
            log_event(LogEvent.WRITER_RESTARTED, logging.WARNING, exit_code=code, after=delay)
            if self._stopping.wait(delay):
                return
            try:
                started = self._start(socket_path=self.socket_path)
            except StoreUnavailable:
                delay = min(delay * 2, 30.0)
                continue
            self.current, delay = started, 1.0
            if self._stopping.is_set():  # stop() came while it was starting
                started.stop()
                return

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self.current.stop(timeout)
        self._thread.join(timeout)
        self.current.stop(timeout)  # one the watcher may have started meanwhile


class WriterUnreachable(StoreUnavailable):
    """There was no writer process to link to; nothing was sent, so writing elsewhere is safe."""

    def __init__(self) -> None:
        super().__init__("no writer process")


# -- the workers' end -----------------------------------------------------------------------------


class _LinkProtocol(asyncio.Protocol):
    def __init__(self, link: WriterLink) -> None:
        self._link = link
        self._buffer = bytearray()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        pending = self._link.pending
        try:
            for answer in frames(self._buffer, _replies):
                future = pending.pop(answer[0], None)
                if future is None or future.done():
                    continue
                result = outcome(answer)
                if isinstance(result, WriteResult):
                    future.set_result(result)
                else:
                    future.set_exception(result)
        except (ValueError, msgspec.DecodeError):
            self._link.lost(self, "unreadable-answer")

    def connection_lost(self, exc: Exception | None) -> None:
        self._link.lost(self, "writer-gone")


class WriterLink:
    """A worker's connection to the writer process, opened on first use in its event loop."""

    def __init__(self, socket_path: Path) -> None:
        self._socket_path = socket_path
        self._transport: asyncio.Transport | None = None
        #: The connection's protocol: a connection replaced by a later one (after a relink)
        #: can no longer break the link.
        self._protocol: _LinkProtocol | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connecting: asyncio.Future[None] | None = None
        self._numbers = itertools.count()
        self.pending: dict[int, asyncio.Future[WriteResult]] = {}
        #: Frames written in this turn of the event loop, sent together at its end: one send
        #: and one wake-up of the writer process for all of them.
        self._outgoing: list[bytes] = []
        #: Set once the link has failed: the store then writes through its own writer thread
        #: until :meth:`relink_due`.
        self.failed = False
        self._failed_at = 0.0
        self._closing = False

    def relink_due(self) -> bool:
        """Whether a failed link should be tried again (the writer may have been restarted)."""
        return (
            self.failed
            and not self._closing
            and time.monotonic() - self._failed_at >= RELINK_SECONDS
        )

    def relink(self) -> None:
        """Forget the failure: the next write connects afresh (and falls back if it cannot)."""
        self.failed = False
        self._transport = None
        self._protocol = None
        self._connecting = None
        self._loop = None

    async def write(self, writes: WriteSet) -> WriteResult:
        loop = asyncio.get_running_loop()
        if self._transport is None or self._loop is not loop:
            await self._connect(loop)
        if self._transport is None:  # lost while connecting: nothing of this write was sent
            raise WriterUnreachable()
        number = next(self._numbers)
        future: asyncio.Future[WriteResult] = loop.create_future()
        self.pending[number] = future
        if not self._outgoing:
            loop.call_soon(self._flush)
        self._outgoing.append(frame((number, writes)))
        return await future

    def _flush(self) -> None:
        outgoing, self._outgoing = self._outgoing, []
        if self._transport is not None:
            self._transport.write(b"".join(outgoing))

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._connecting is not None and self._loop is loop:
            await asyncio.shield(self._connecting)
            return
        self._loop = loop
        connecting = self._connecting = loop.create_future()
        try:
            transport, protocol = await loop.create_unix_connection(
                lambda: _LinkProtocol(self), str(self._socket_path)
            )
        except OSError:
            self.failed = True
            self._failed_at = time.monotonic()
            log_event(LogEvent.WRITER_LINK_LOST, logging.WARNING, reason="unreachable")
            connecting.set_exception(WriterUnreachable())
            connecting.exception()  # retrieved: each waiter raises its own
            raise WriterUnreachable() from None
        self._transport, self._protocol = transport, protocol
        if self._failed_at:
            log_event(LogEvent.WRITER_LINK_RESTORED, logging.WARNING)
            self._failed_at = 0.0
        connecting.set_result(None)

    def lost(self, protocol: _LinkProtocol, reason: str) -> None:
        """A connection ended or spoke nonsense: the link is broken if it was the current one."""
        if protocol is self._protocol:
            self.broken(reason)

    def broken(self, reason: str) -> None:
        """Fail every write in flight (their outcome is unknown) and stop using the link."""
        if not self.failed and not self._closing:
            log_event(LogEvent.WRITER_LINK_LOST, logging.WARNING, reason=reason)
        self.failed = True
        self._failed_at = time.monotonic()
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        pending, self.pending = self.pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(StoreUnavailable(f"writer link lost: {reason}"))

    def close(self) -> None:
        self._closing = True
        if self._transport is not None:
            self._transport.close()
            self._transport = None


if __name__ == "__main__":
    main()
