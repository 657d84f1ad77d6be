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

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["PasswordSeal", "write_seal_key"]


def write_seal_key(path: Path) -> None:
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(secrets.token_bytes(32))


class PasswordSeal:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the seal key must be 32 bytes")
        self._aead = AESGCM(key)

    @classmethod
    def from_file(cls, path: Path) -> PasswordSeal:
        return cls(path.read_bytes())

    def seal(self, mailbox_id: str, password: str) -> str:
        nonce = secrets.token_bytes(12)
        sealed = self._aead.encrypt(nonce, password.encode(), mailbox_id.encode())
        return base64.b64encode(nonce + sealed).decode()

    def open(self, mailbox_id: str, sealed: str) -> str:
        raw = base64.b64decode(sealed)
        return self._aead.decrypt(raw[:12], raw[12:], mailbox_id.encode()).decode()
