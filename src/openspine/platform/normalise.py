"""How demographic values compare: case, accents, spaces and sounds do not matter (PDS, SDS)."""

from __future__ import annotations

import unicodedata
from functools import lru_cache

import jellyfish

__all__ = ["normalise_email", "normalise_name", "normalise_phone", "normalise_postcode", "phonetic"]


@lru_cache(maxsize=65_536)
def normalise_name(value: str) -> str:
    """Upper case ASCII without accents or punctuation: ``Kociński`` → ``KOCINSKI``.

    Hyphens and apostrophes become spaces so ``Smith-Jones`` matches ``SMITH JONES``;
    runs of spaces collapse to one.
    """
    decomposed = unicodedata.normalize("NFKD", value)
    kept = []
    for ch in decomposed:
        if unicodedata.combining(ch):
            continue
        if ch.isascii() and ch.isalnum():
            kept.append(ch.upper())
        elif ch in " -'.":
            kept.append(" ")
        elif ch == "ß":
            kept.append("SS")
        elif ch in "Øø":
            kept.append("O")
        elif ch in "Ææ":
            kept.append("AE")
    return " ".join("".join(kept).split())


def normalise_postcode(value: str) -> str:
    """Postcodes compare without spaces and case: ``ls1 6ae`` → ``LS16AE``."""
    return "".join(value.split()).upper()


def normalise_email(value: str) -> str:
    return value.strip().lower()


def normalise_phone(value: str) -> str:
    """Digits only, with a UK ``+44`` turned into the national ``0`` prefix."""
    if value.isascii() and value.isdigit():  # the usual case: nothing to take out
        return value
    digits = "".join(ch for ch in value if ch in "0123456789")
    if value.strip().startswith("+44") and digits.startswith("44"):
        digits = "0" + digits[2:]
    return digits


@lru_cache(maxsize=65_536)
def phonetic(normalised_name: str) -> str:
    """Soundex of a normalised name (PDS fuzzy search uses Soundex); empty for no letters."""
    letters = "".join(ch for ch in normalised_name if ch.isalpha())
    return jellyfish.soundex(letters) if letters else ""
