"""MESH rules without I/O: message ids, statuses, chunk ranges, the stored message record."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from random import getrandbits
from typing import Final

import msgspec

__all__ = [
    "MeshMessage",
    "MessageStatus",
    "MessageType",
    "new_message_id",
    "parse_chunk_range",
]

#: The resource type of message records in the platform store.
MESSAGE: Final = "MeshMessage"
MAX_SUBJECT: Final = 500
MAX_ID_HEADER: Final = 300


class MessageStatus(StrEnum):
    UPLOADING = "uploading"
    ACCEPTED = "accepted"
    ACKNOWLEDGED = "acknowledged"
    UNDELIVERABLE = "undeliverable"
    PURGED = "purged"


class MessageType(StrEnum):
    DATA = "DATA"
    REPORT = "REPORT"


class MeshMessage(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A message's metadata; its chunks are blobs, each named by its reference in the blob
    store (its SHA-256 digest, and where in a pack a small one is: :mod:`openspine.mesh.blobs`).

    Stored without the fields that hold their defaults (a third smaller: ADR 0022); a record
    stored with every field reads the same.
    """

    message_id: str
    sender: str
    recipient: str
    workflow_id: str
    status: MessageStatus
    message_type: MessageType = MessageType.DATA
    total_chunks: int = 1
    chunks: list[str | None] = msgspec.field(default_factory=list)
    chunk_sizes: list[int] = msgspec.field(default_factory=list)
    content_type: str = "application/octet-stream"
    content_encoding: str = ""
    subject: str | None = None
    file_name: str | None = None
    local_id: str | None = None
    partner_id: str | None = None
    checksum: str | None = None
    encrypted: bool = False
    compressed: bool = False
    created_at: str
    accepted_at: str | None = None
    status_at: str
    expires_at: str | None = None
    purge_at: str | None = None
    linked_message_id: str | None = None
    status_event: str | None = None
    status_code: str | None = None
    status_description: str | None = None

    @property
    def file_size(self) -> int:
        return sum(self.chunk_sizes)

    @property
    def complete(self) -> bool:
        return all(c is not None for c in self.chunks) and len(self.chunks) == self.total_chunks


def new_message_id(now: datetime | None = None) -> str:
    """MESH format: UTC time to the millisecond, then six random hex digits (``…222_ABCDEF``).

    The digits only keep ids apart (a clash is drawn again, see ``MeshService.send``); an id
    grants nothing, since only its sender may track a message and only its recipient download
    it. So they come from ``random``, reseeded in each forked worker, not from the operating
    system's generator: a system call per send (ADR 0018 did the same for audit event ids).
    """
    m = now or datetime.now(UTC)
    return (
        f"{m.year:04d}{m.month:02d}{m.day:02d}{m.hour:02d}{m.minute:02d}{m.second:02d}"
        f"{m.microsecond // 1000:03d}_{getrandbits(24):06X}"
    )


def parse_chunk_range(value: str | None, chunk_number: int) -> tuple[int, int] | None:
    """``n:total`` for chunk ``chunk_number``; ``None`` when the header is wrong."""
    if not value:
        return (1, 1) if chunk_number == 1 else None
    parts = value.split(":")
    if len(parts) != 2:
        return None
    try:
        number, total = (int(p.strip()) for p in parts)
    except ValueError:
        return None
    if not 0 < number <= total or number != chunk_number or total > 99_999:
        return None
    return number, total


def yes(value: str | None) -> bool:
    return (value or "").strip().upper() in ("Y", "YES", "TRUE")
