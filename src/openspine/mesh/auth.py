"""The NHSMESH authorisation token: HMAC-SHA256 over mailbox, nonce, count, password, time.

``NHSMESH {mailbox}:{nonce}:{nonce_count}:{timestamp}:{hmac}`` where the HMAC key is the
environment's shared key and the message is ``mailbox:nonce:nonce_count:password:timestamp``.
A token is valid within two hours of its timestamp and once only: the caller records
``(nonce, nonce_count)`` as a consumed nonce in the store, so a replay is refused.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from hashlib import sha256
from typing import Final

__all__ = ["MeshToken", "TokenRejected", "parse_token", "verify_token"]

SCHEME: Final = "NHSMESH "
WINDOW: Final = timedelta(hours=2)


class TokenRejected(Exception):
    """Any reason a token is not accepted; the reason is for logs, never for the caller."""


@dataclass(frozen=True, slots=True)
class MeshToken:
    mailbox_id: str
    nonce: str
    nonce_count: str
    timestamp: str
    digest: str
    issued_at: datetime


def _digits(value: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also accepts "²" and "٣", which ``int`` refuses."""
    return value.isascii() and value.isdigit()


def parse_token(header: str | None) -> MeshToken:
    if not header or not header.startswith(SCHEME):
        raise TokenRejected("missing or not an NHSMESH token")
    parts = header[len(SCHEME) :].split(":")
    if len(parts) != 5 or not all(parts):
        raise TokenRejected("malformed token")
    mailbox, nonce, count, timestamp, digest = parts
    if not _digits(count) or len(timestamp) != 12 or not _digits(timestamp):
        raise TokenRejected("malformed token fields")
    if len(nonce) > 100 or len(digest) != 64 or len(mailbox) > 100:
        raise TokenRejected("malformed token lengths")
    return MeshToken(mailbox, nonce, count, timestamp, digest.lower(), _issued_at(timestamp))


def _issued_at(timestamp: str) -> datetime:
    """``YYYYMMDDHHMM`` (12 ASCII digits, already checked) as a UTC time; parsed once per token."""
    try:
        return datetime(
            int(timestamp[:4]),
            int(timestamp[4:6]),
            int(timestamp[6:8]),
            int(timestamp[8:10]),
            int(timestamp[10:12]),
            tzinfo=UTC,
        )
    except ValueError:  # month 13, hour 25 …
        raise TokenRejected("bad timestamp") from None


def expected_digest(shared_key: bytes, token: MeshToken, password: str) -> str:
    message = f"{token.mailbox_id}:{token.nonce}:{token.nonce_count}:{password}:{token.timestamp}"
    return hmac.new(shared_key, message.encode(), sha256).hexdigest()


def verify_token(
    token: MeshToken, *, shared_key: bytes, password: str, now: datetime | None = None
) -> None:
    moment = now or datetime.now(UTC)
    if abs(moment - token.issued_at) > WINDOW:
        raise TokenRejected("timestamp outside the two-hour window")
    if not hmac.compare_digest(expected_digest(shared_key, token, password), token.digest):
        raise TokenRejected("bad hash")
