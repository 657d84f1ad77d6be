"""The searchable facts of a Patient resource, and the index keys that find them.

A name is *historic* when its use is ``old`` or ``maiden``; an address or telecom when its use is
``old``, or when its period has ended and a current one of the same use (and system) has replaced
it — so a record whose only home address carries an end date still has a current home address.
Non-fuzzy searches see current data unless ``_history=true``; fuzzy searches always see both (PDS
FHIR specification, "History").
"""

from __future__ import annotations

from typing import Any, Final, NamedTuple

from openspine.platform.normalise import (
    normalise_email,
    normalise_name,
    normalise_phone,
    normalise_postcode,
    phonetic,
)
from openspine.platform.storage.ports import IndexKey

__all__ = [
    "Demographics",
    "NameFacts",
    "demographics",
    "historic_flags",
    "search_keys",
]

HISTORIC_NAME_USES: Final = frozenset({"old", "maiden"})
ODS_SYSTEM: Final = "https://fhir.nhs.uk/Id/ods-organization-code"
CONFIDENTIALITY: Final = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"

#: Index parameters: family|dob and dob|family for current (and ``h`` historic) names, and
#: dob|soundex for every family and given name, current or not (fuzzy search).
FAMILY_DOB: Final = "fd"
DOB_FAMILY: Final = "df"
HISTORIC: Final = "h"
DOB_SOUNDEX: Final = "sx"
_NONE: Final[dict[str, Any]] = {}


class NameFacts(NamedTuple):
    family: str
    given: tuple[str, ...]
    historic: bool

    @property
    def given_joined(self) -> str:
        return " ".join(self.given)


class Demographics(NamedTuple):
    """A named tuple, not a frozen dataclass: one is made per search candidate and per loaded
    patient, and a frozen dataclass sets each field through ``object.__setattr__``."""

    nhs_number: str
    names: tuple[NameFacts, ...]
    gender: str | None
    birth_date: str | None
    death_date: str | None
    postcodes: tuple[tuple[str, bool], ...]
    gp: str | None
    emails: tuple[tuple[str, bool], ...]
    phones: tuple[tuple[str, bool], ...]
    restricted: bool


def _ended(item: dict[str, Any], today: str) -> bool:
    period = item.get("period")
    if period is None:
        return False
    end = period.get("end")
    return isinstance(end, str) and end[:10] < today


def historic_flags(items: list[dict[str, Any]], today: str, *keys: str) -> list[bool]:
    """For each address or telecom: is it historic (see the module docstring)?"""
    for item in items:
        if _ended(item, today):
            break
    else:  # the usual case: nothing has ended, only ``use`` decides
        return [item.get("use") == "old" for item in items]
    ended = [_ended(item, today) for item in items]
    current_kinds = {
        tuple(item.get(k) for k in keys)
        for item, item_ended in zip(items, ended, strict=True)
        if item.get("use") != "old" and not item_ended
    }
    return [
        item.get("use") == "old"
        or (item_ended and tuple(item.get(k) for k in keys) in current_kinds)
        for item, item_ended in zip(items, ended, strict=True)
    ]


def demographics(patient: dict[str, Any], today: str) -> Demographics:
    """What search compares, normalised once; ``today`` is an ISO date.

    Every search scores each candidate with this and every bulk-loaded patient passes through
    it, so it is written as plain loops over what the resource holds (ADR 0020)."""
    names = []
    for name in patient.get("name", ()):
        family = normalise_name(str(name.get("family", "")))
        given = tuple([g for g in map(normalise_name, map(str, name.get("given", ()))) if g])
        if family or given:
            names.append(NameFacts(family, given, name.get("use") in HISTORIC_NAME_USES))
    postcodes: tuple[tuple[str, bool], ...] = ()
    addresses = patient.get("address")
    if addresses:
        postcodes = tuple(
            [
                (normalise_postcode(str(a["postalCode"])), historic)
                for a, historic in zip(
                    addresses, historic_flags(addresses, today, "use"), strict=True
                )
                if a.get("postalCode")
            ]
        )
    emails, phones = [], []
    telecoms = patient.get("telecom")
    if telecoms:
        flags = historic_flags(telecoms, today, "system", "use")
        for t, historic in zip(telecoms, flags, strict=True):
            value = t.get("value")
            if not isinstance(value, str):
                continue
            system = t.get("system")
            if system == "email":
                emails.append((normalise_email(value), historic))
            elif system == "phone":
                phones.append((normalise_phone(value), historic))
    gp = None
    for practice in patient.get("generalPractitioner", ()):
        code = practice.get("identifier", _NONE).get("value")
        if isinstance(code, str):
            gp = code.upper()
    death = patient.get("deceasedDateTime")
    restricted = False
    for label in patient.get("meta", _NONE).get("security", ()):
        if label.get("code") == "R" and label.get("system") == CONFIDENTIALITY:
            restricted = True
    return Demographics(
        nhs_number=str(patient["id"]),
        names=tuple(names),
        gender=patient.get("gender"),
        birth_date=patient.get("birthDate"),
        death_date=death[:10] if isinstance(death, str) else None,
        postcodes=postcodes,
        gp=gp,
        emails=tuple(emails),
        phones=tuple(phones),
        restricted=restricted,
    )


def search_keys(facts: Demographics) -> tuple[IndexKey, ...]:
    """The index keys of one patient. No date of birth, no keys: every search needs one."""
    dob = facts.birth_date
    if not dob:
        return ()
    keys: set[IndexKey] = set()
    for name in facts.names:
        suffix = HISTORIC if name.historic else ""
        if name.family:
            keys.add((FAMILY_DOB + suffix, f"{name.family}|{dob}"))
            keys.add((DOB_FAMILY + suffix, f"{dob}|{name.family}"))
        for part in (name.family, *name.given):
            code = phonetic(part)
            if code:
                keys.add((DOB_SOUNDEX, f"{dob}|{code}"))
    return tuple(sorted(keys))
