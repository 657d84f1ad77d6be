"""Mailbox passwords, sealed with AES-GCM under a key kept outside the store.

The NHSMESH token is an HMAC keyed with the shared key over a message that includes the mailbox
password, so the server needs the password itself to check a token: a one-way hash cannot be
used (ADR 0010). Passwords are therefore sealed: AES-256-GCM with the mailbox id as associated
data, under a 32-byte key file (``keys/mesh-seal.key``) that never enters the store or the logs.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["PasswordSeal", "write_seal_key"]


def write_seal_key(path: Path) -> None:
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(secrets.token_bytes(32))


#: How many opened passwords a process keeps (one per mailbox that has sent a token lately).
OPENED_CACHE: Final = 4096


class PasswordSeal:
    """Seals and opens mailbox passwords. Opening is remembered per sealed value: every MESH
    request checks a token, and the process already holds the key that opens them all, so
    keeping what it opened adds no exposure; a changed password is a new sealed value."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the seal key must be 32 bytes")
        self._aead = AESGCM(key)
        self._opened: dict[tuple[str, str], str] = {}

    @classmethod
    def from_file(cls, path: Path) -> PasswordSeal:
        return cls(path.read_bytes())

    def seal(self, mailbox_id: str, password: str) -> str:
        nonce = secrets.token_bytes(12)
        sealed = self._aead.encrypt(nonce, password.encode(), mailbox_id.encode())
        return base64.b64encode(nonce + sealed).decode()

    def open(self, mailbox_id: str, sealed: str) -> str:
        opened = self._opened.get((mailbox_id, sealed))
        if opened is None:
            raw = base64.b64decode(sealed)
            opened = self._aead.decrypt(raw[:12], raw[12:], mailbox_id.encode()).decode()
            if len(self._opened) >= OPENED_CACHE:
                self._opened.clear()
            self._opened[(mailbox_id, sealed)] = opened
        return opened
