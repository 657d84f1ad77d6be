"""NHSMESH token parsing: malformed tokens are refused, never an internal error."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography.exceptions import InvalidTag

from openspine.mesh.auth import TokenRejected, parse_token
from openspine.mesh.passwords import PasswordSeal

DIGEST = "a" * 64
FULLWIDTH_TIMESTAMP = "".join(chr(0xFF10 + int(d)) for d in "202611232300")


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer x",
        f"NHSMESH ALICE:nonce:\u00b2:202611232300:{DIGEST}",  # isdigit() but not int()
        "NHSMESH ALICE:nonce:1:"
        + "".join(chr(0xFF10 + int(d)) for d in "202611232300")
        + f":{DIGEST}",
        f"NHSMESH ALICE:nonce:1:2026112323:{DIGEST}",
        f"NHSMESH ALICE:nonce:1:202611232300:{DIGEST[:-1]}",
        "NHSMESH ALICE:nonce:1:202611232300",
        f"NHSMESH ALICE:nonce:1:202613232300:{DIGEST}",  # month 13
        f"NHSMESH ALICE:nonce:1:202611232360:{DIGEST}",  # minute 60
    ],
)
def test_malformed_tokens_are_rejected(header: str | None) -> None:
    with pytest.raises(TokenRejected):
        parse_token(header)


def test_a_well_formed_token_parses() -> None:
    token = parse_token(f"NHSMESH ALICE:nonce:1:202611232359:{DIGEST}")
    assert token.mailbox_id == "ALICE"
    assert token.issued_at == datetime(2026, 11, 23, 23, 59, tzinfo=UTC)


def test_an_opened_password_is_remembered_per_sealed_value() -> None:
    seal = PasswordSeal(b"k" * 32)
    first = seal.seal("ALICE", "old password")
    assert seal.open("ALICE", first) == "old password"
    assert seal.open("ALICE", first) == "old password"
    # A changed password is a new sealed value, opened afresh; another mailbox's id refuses it.
    second = seal.seal("ALICE", "new password")
    assert seal.open("ALICE", second) == "new password"
    with pytest.raises(InvalidTag):
        seal.open("BOB", second)
