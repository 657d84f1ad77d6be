"""NHSMESH token parsing: malformed tokens are refused, never an internal error."""

from __future__ import annotations

import pytest

from openspine.mesh.auth import TokenRejected, parse_token

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
    ],
)
def test_malformed_tokens_are_rejected(header: str | None) -> None:
    with pytest.raises(TokenRejected):
        parse_token(header)


def test_a_well_formed_token_parses() -> None:
    token = parse_token(f"NHSMESH ALICE:nonce:1:202611232300:{DIGEST}")
    assert token.mailbox_id == "ALICE"
