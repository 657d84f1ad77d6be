"""Verification of an audit chain from its genesis, as run by ``openspine audit verify`` for
each of the two (:class:`AuditChain`, ADR 0025)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from openspine.platform.audit.chain import GENESIS_HASH, chain_hash
from openspine.platform.storage.ports import AuditChain, Store

__all__ = ["VerificationResult", "verify_chain"]


@dataclass(frozen=True, slots=True)
class VerificationResult:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    first_bad_event: str | None = None
    problem: str | None = None


async def verify_chain(
    store: Store,
    chain: AuditChain = AuditChain.MAIN,
    progress: Callable[[int], None] | None = None,
) -> VerificationResult:
    """Walk ``chain`` from the genesis; stop at the first event that does not hold."""
    prev_hash = GENESIS_HASH
    expected_seq = 1
    checked = 0
    async for row in store.audit_rows(chain):
        if row.seq != expected_seq:
            return VerificationResult(
                False,
                checked,
                expected_seq,
                None,
                f"event {expected_seq} is missing (next stored is {row.seq})",
            )
        if row.prev_hash != prev_hash:
            return VerificationResult(
                False, checked, row.seq, row.event_id, "link to the previous event is broken"
            )
        if chain_hash(prev_hash, row.seq, row.payload) != row.hash:
            return VerificationResult(
                False, checked, row.seq, row.event_id, "content does not match its hash"
            )
        prev_hash = row.hash
        expected_seq += 1
        checked += 1
        if progress is not None:
            progress(checked)
    head_seq, head_hash = await store.audit_head(chain)
    if head_seq != checked or head_hash != prev_hash:
        return VerificationResult(
            False,
            checked,
            checked + 1 if head_seq > checked else head_seq,
            None,
            f"chain ends at event {checked} but the recorded head is event {head_seq}",
        )
    return VerificationResult(True, checked)
