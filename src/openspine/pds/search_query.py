"""Patient search parameters: parsed and checked against the PDS FHIR rules before any I/O.

Errors follow one principle: a value that is malformed on its own is ``INVALID_VALUE``; a
combination that PDS cannot search (too few parameters, wildcards where none are allowed, the
deprecated and current postcode parameters together) is ``INVALID_SEARCH_DATA``; a parameter
PDS does not know is ``ADDITIONAL_PROPERTIES``; no parameters at all is ``UNSUPPORTED_SERVICE``.
Diagnostics name fields, never the values searched for (those are patient data).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Final

from openspine.pds.errors import SingleResultOnly
from openspine.platform.errors import (
    AdditionalProperties,
    InvalidSearchData,
    InvalidValue,
    UnsupportedService,
)
from openspine.platform.normalise import (
    normalise_email,
    normalise_name,
    normalise_phone,
    normalise_postcode,
)
from openspine.platform.security.principal import AccessMode

__all__ = [
    "SEARCH_CRITERIA",
    "SEARCH_OPTIONS",
    "DateRange",
    "SearchQuery",
    "Text",
    "parse_search",
]

MAX_NAME_LENGTH: Final = 35
HEALTHCARE_WORKER_MAX_RESULTS: Final = 50
WILDCARD: Final = "*"
#: The search parameters of the PDS contract, in its order: criteria, then options.
SEARCH_CRITERIA: Final = (
    "family",
    "given",
    "gender",
    "birthdate",
    "death-date",
    "address-postalcode",
    "address-postcode",
    "general-practitioner",
    "email",
    "phone",
)
SEARCH_OPTIONS: Final = ("_fuzzy-match", "_exact-match", "_history", "_max-results")
_OPTIONS: Final = frozenset(SEARCH_OPTIONS)
_CRITERIA: Final = frozenset(SEARCH_CRITERIA)
_REPEATABLE: Final = frozenset({"given", "birthdate", "death-date"})
_GENDERS: Final = frozenset({"male", "female", "other", "unknown"})
_DATE: Final = re.compile(r"^(eq|ge|le)?(\d{4}-\d{2}-\d{2})$")
_ODS: Final = re.compile(r"^[A-Za-z0-9]{3,10}$")


@dataclass(frozen=True, slots=True)
class Text:
    """A normalised search text; with a wildcard it matches by ``pattern`` from ``prefix``."""

    value: str
    wildcard: bool = False

    @property
    def prefix(self) -> str:
        return self.value.split(WILDCARD, 1)[0]

    def matches(self, candidate: str) -> bool:
        if not self.wildcard:
            return candidate == self.value
        pattern = ".*".join(re.escape(part) for part in self.value.split(WILDCARD))
        return re.fullmatch(pattern, candidate) is not None


@dataclass(frozen=True, slots=True)
class DateRange:
    """Inclusive ISO dates; ``exact`` when asked for with ``eq``."""

    low: str
    high: str
    exact: bool

    def contains(self, value: str | None) -> bool:
        return value is not None and self.low <= value[:10] <= self.high


@dataclass(frozen=True, slots=True)
class SearchQuery:
    family: Text | None = None
    given: tuple[Text, ...] = ()
    gender: str | None = None
    birth: DateRange | None = None
    death: DateRange | None = None
    postcode: Text | None = None
    gp: str | None = None
    email: str | None = None
    phone: str | None = None
    fuzzy: bool = False
    exact: bool = False
    history: bool = False
    max_results: int = HEALTHCARE_WORKER_MAX_RESULTS

    @property
    def location_sensitive(self) -> bool:
        """Searches by where someone lives or is registered never return restricted patients."""
        return self.postcode is not None or self.gp is not None

    @property
    def with_history(self) -> bool:
        return self.fuzzy or self.history


def _boolean(name: str, raw: str) -> bool:
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    raise InvalidValue(f"Invalid value - '{raw[:10]}' in field '{name}'")


def _text(name: str, raw: str, *, normalise: bool = True) -> Text:
    if len(raw) > MAX_NAME_LENGTH:
        raise InvalidValue(
            f"Invalid value in field '{name}': more than {MAX_NAME_LENGTH} characters"
        )
    if WILDCARD in raw[:2]:
        raise InvalidSearchData(
            f"Invalid search data provided - '{name}' cannot have a wildcard in its first two"
            " characters"
        )
    parts = raw.split(WILDCARD)
    norm = [normalise_name(p) if normalise else normalise_postcode(p) for p in parts]
    value = WILDCARD.join(norm)
    if not norm[0]:
        raise InvalidValue(f"Invalid value in field '{name}'")
    return Text(value, wildcard=len(parts) > 1)


def _date_range(name: str, raws: Sequence[str]) -> DateRange:
    low, high, exact = "0000-01-01", "9999-12-31", False
    seen: set[str] = set()
    for raw in raws:
        m = _DATE.match(raw)
        if m is None:
            raise InvalidValue(f"Invalid value - '{raw[:16]}' in field '{name}'")
        op, value = m.group(1) or "eq", m.group(2)
        try:
            date.fromisoformat(value)
        except ValueError:
            raise InvalidValue(f"Invalid value - '{raw[:16]}' in field '{name}'") from None
        if op in seen or (raws and op == "eq" and len(raws) > 1):
            raise InvalidSearchData(
                f"Invalid search data provided - '{name}' takes one eq, or a ge and a le"
            )
        seen.add(op)
        if op == "eq":
            low, high, exact = value, value, True
        elif op == "ge":
            low = value
        else:
            high = value
    if low > high:
        raise InvalidSearchData(f"Invalid search data provided - '{name}' range is empty")
    return DateRange(low, high, exact)


def parse_search(params: Sequence[tuple[str, str]], mode: AccessMode) -> SearchQuery:
    """Check every rule of the PDS search contract; raise the Spine error for the first broken."""
    values: dict[str, list[str]] = {}
    for key, value in params:
        if key not in _CRITERIA and key not in _OPTIONS:
            raise AdditionalProperties(
                f"Invalid search data provided - '{key[:40]}' is not a supported parameter"
            )
        values.setdefault(key, []).append(value)
    for key, found in values.items():
        if len(found) > 1 and key not in _REPEATABLE:
            raise InvalidSearchData(f"Invalid search data provided - '{key}' given more than once")
        if len(found) > 2 and key != "given":
            raise InvalidSearchData(f"Invalid search data provided - '{key}' given too many times")
    if not any(k in _CRITERIA for k in values):
        raise UnsupportedService("No search parameters were provided")
    if "address-postalcode" in values and "address-postcode" in values:
        raise InvalidSearchData(
            "Invalid search data provided - 'address-postcode' and 'address-postalcode' cannot"
            " both be used; 'address-postcode' is deprecated"
        )

    def one(key: str) -> str | None:
        found = values.get(key)
        return found[0] if found else None

    fuzzy = _boolean("_fuzzy-match", one("_fuzzy-match") or "false")
    exact = _boolean("_exact-match", one("_exact-match") or "false")
    history = _boolean("_history", one("_history") or "false")
    max_results = _max_results(one("_max-results"), mode)

    family = one("family")
    family_text = _text("family", family) if family is not None else None
    given = tuple(_text("given", g) for g in values.get("given", []))
    if any(g.wildcard for g in given[1:]):
        raise InvalidSearchData(
            "Invalid search data provided - only the first 'given' may have a wildcard"
        )
    gender = one("gender")
    if gender is not None and gender not in _GENDERS:
        raise InvalidValue(f"Invalid value - '{gender[:10]}' in field 'gender'")
    birth = _date_range("birthdate", values["birthdate"]) if "birthdate" in values else None
    death = _date_range("death-date", values["death-date"]) if "death-date" in values else None
    postcode_raw = one("address-postalcode") or one("address-postcode")
    postcode = _text("address-postalcode", postcode_raw, normalise=False) if postcode_raw else None
    gp = one("general-practitioner")
    if gp is not None and not _ODS.match(gp):
        raise InvalidValue("Invalid value in field 'general-practitioner'")
    email, phone = one("email"), one("phone")
    for name, raw in (("email", email), ("phone", phone)):
        if raw is not None and WILDCARD in raw:
            raise InvalidSearchData(
                f"Invalid search data provided - wildcards are not supported for '{name}'"
            )
    if email is not None and ("@" not in email or len(email) > 90):
        raise InvalidValue("Invalid value in field 'email'")
    phone_digits = normalise_phone(phone) if phone is not None else None
    if phone is not None and not phone_digits:
        raise InvalidValue("Invalid value in field 'phone'")

    query = SearchQuery(
        family=family_text,
        given=given,
        gender=gender,
        birth=birth,
        death=death,
        postcode=postcode,
        gp=gp.upper() if gp else None,
        email=normalise_email(email) if email is not None else None,
        phone=phone_digits,
        fuzzy=fuzzy,
        exact=exact,
        history=history,
        max_results=max_results,
    )
    _check_combination(query)
    return query


def _max_results(raw: str | None, mode: AccessMode) -> int:
    application = mode is AccessMode.APPLICATION
    if raw is None:
        return 1 if application else HEALTHCARE_WORKER_MAX_RESULTS
    try:
        value = int(raw)
    except ValueError:
        raise InvalidValue(f"Invalid value - '{raw[:10]}' in field '_max-results'") from None
    if application and value != 1:
        raise SingleResultOnly(
            "Invalid value - '_max-results' must be 1 in application-restricted access mode"
        )
    if not 1 <= value <= HEALTHCARE_WORKER_MAX_RESULTS:
        raise InvalidValue(
            f"Invalid value - '{raw[:10]}' in field '_max-results' (must be between 1 and"
            f" {HEALTHCARE_WORKER_MAX_RESULTS})"
        )
    return value


def _check_combination(q: SearchQuery) -> None:
    if q.fuzzy:
        if (
            (q.family and q.family.wildcard)
            or any(g.wildcard for g in q.given)
            or (q.postcode and q.postcode.wildcard)
        ):
            raise InvalidSearchData(
                "Invalid search data provided - wildcards cannot be used in a fuzzy search"
            )
        has_given, has_family = bool(q.given), q.family is not None
        located = q.gender is not None and q.postcode is not None and q.birth is not None
        if not (
            (has_given and has_family and q.birth is not None)
            or (has_family and located)
            or (has_given and located)
        ):
            raise InvalidSearchData(
                "Invalid search data provided - a fuzzy search needs given name, family name and"
                " date of birth; or family or given name with date of birth, gender and postcode"
            )
        return
    if q.family is None or q.birth is None:
        raise InvalidSearchData(
            "Invalid search data provided - a search needs at least a family name and a date"
            " of birth"
        )
