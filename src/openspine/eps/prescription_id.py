"""Short-form prescription IDs: ``XXXXXX-XXXXXX-XXXXXC`` with an ISO 7064 MOD 37-2 check character.

The first group is random hex, the second the prescribing organisation's ODS code left-padded
with zeros to six characters, the third five random hex digits; the last character checks the
seventeen before it over the alphabet ``0-9 A-Z +``.
"""

from __future__ import annotations

import re
import secrets
from typing import Final

__all__ = ["ALPHABET", "check_character", "is_valid", "new_prescription_id"]

ALPHABET: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ+"
_SHAPE: Final = re.compile(r"^[0-9A-F]{6}-[0-9A-Z]{6}-[0-9A-F]{5}[0-9A-Z+]$")


def check_character(body: str) -> str:
    """The MOD 37-2 check character of ``body`` (dashes ignored)."""
    total = 0
    for ch in body.replace("-", ""):
        total = ((total + ALPHABET.index(ch)) * 2) % 37
    return ALPHABET[(38 - total) % 37]


def is_valid(value: str) -> bool:
    """The shape is right and the check character holds."""
    return bool(_SHAPE.match(value)) and check_character(value[:-1]) == value[-1]


def new_prescription_id(ods_code: str) -> str:
    """A new short-form ID for a prescription written at ``ods_code``."""
    organisation = "".join(ch for ch in ods_code.upper() if ch.isalnum())[-6:].rjust(6, "0")
    body = f"{secrets.token_hex(3).upper()}-{organisation}-{secrets.token_hex(3).upper()[:5]}"
    return body + check_character(body)
