"""The part of group commit that both adapters share: chaining audit events within a batch."""

from __future__ import annotations

from dataclasses import dataclass

from openspine.platform.audit.chain import chain_hash
from openspine.platform.storage.ports import AuditRecord

__all__ = ["ChainCursor"]


@dataclass(slots=True)
class ChainCursor:
    """The audit chain head while a batch is being applied; rewound when a write set fails."""

    seq: int
    hash: str

    def link(self, record: AuditRecord) -> tuple[int, str, str, bytes, str, str]:
        """Advance over ``record``; return its row: seq, id, time, payload, prev hash, hash."""
        prev = self.hash
        self.seq += 1
        self.hash = chain_hash(prev, self.seq, record.payload)
        return (self.seq, record.event_id, record.recorded_at, record.payload, prev, self.hash)

    def mark(self) -> tuple[int, str]:
        return self.seq, self.hash

    def rewind(self, mark: tuple[int, str]) -> None:
        self.seq, self.hash = mark
