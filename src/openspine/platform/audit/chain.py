"""The hash chain: each event's hash covers its sequence number, its bytes and the previous hash.

Editing a row changes its hash; deleting one leaves a gap in the sequence; swapping two breaks
both links; truncating the tail disagrees with the recorded head. SHA-256, hex encoded.
"""

from __future__ import annotations

import hashlib

__all__ = ["GENESIS_HASH", "chain_hash"]

GENESIS_HASH = "0" * 64


def chain_hash(prev_hash: str, seq: int, payload: bytes) -> str:
    digest = hashlib.sha256()
    digest.update(prev_hash.encode("ascii"))
    digest.update(b"\x1f%d\x1f" % seq)
    digest.update(payload)
    return digest.hexdigest()
