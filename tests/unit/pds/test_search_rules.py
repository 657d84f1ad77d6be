"""Search parameters, normalisation, index keys and scoring: the rules without I/O."""

from __future__ import annotations

import pytest

from openspine.pds.demographics import CONFIDENTIALITY, demographics, search_keys
from openspine.pds.errors import SingleResultOnly
from openspine.pds.matching import score
from openspine.pds.search_query import parse_search
from openspine.platform.errors import InvalidSearchData, InvalidValue
from openspine.platform.normalise import (
    normalise_name,
    normalise_phone,
    normalise_postcode,
    phonetic,
)
from openspine.platform.security.principal import AccessMode

HCW = AccessMode.HEALTHCARE_WORKER
PATIENT = {
    "resourceType": "Patient",
    "id": "9000000009",
    "meta": {"versionId": "1", "security": [{"code": "U"}]},
    "name": [
        {"id": "1", "use": "usual", "family": "O'Reilly-Kociński", "given": ["John Paul", "James"]},
        {"id": "2", "use": "maiden", "family": "Adams", "given": ["John Paul"]},
    ],
    "gender": "male",
    "birthDate": "1980-02-29",
    "address": [
        {"id": "1", "use": "home", "postalCode": "LS1 6AE"},
        {"id": "2", "use": "home", "postalCode": "BD1 1AA", "period": {"end": "2001-01-01"}},
    ],
    "telecom": [{"system": "email", "value": "J.P@Example.com"}],
    "generalPractitioner": [{"identifier": {"value": "y12345"}}],
}
FACTS = demographics(PATIENT, "2026-11-23")


def q(*pairs: tuple[str, str], mode: AccessMode = HCW):  # type: ignore[no-untyped-def]
    return parse_search(list(pairs), mode)


def test_normalisation() -> None:
    assert normalise_name("O'Reilly-Kociński") == "O REILLY KOCINSKI"
    assert normalise_postcode(" ls1 6ae ") == "LS16AE"
    assert normalise_phone("+44 1632 960587") == "01632960587"
    assert phonetic("SMITH") == phonetic("SMYTHE") == "S530"


def test_demographics_of_a_patient() -> None:
    assert FACTS.nhs_number == "9000000009"
    assert [(n.family, n.given, n.historic) for n in FACTS.names] == [
        ("O REILLY KOCINSKI", ("JOHN PAUL", "JAMES"), False),
        ("ADAMS", ("JOHN PAUL",), True),
    ]
    # The ended home address is historic: a current home address replaced it.
    assert FACTS.postcodes == (("LS16AE", False), ("BD11AA", True))
    assert FACTS.emails == (("j.p@example.com", False),)
    assert FACTS.gp == "Y12345"
    assert not FACTS.restricted
    alone = demographics(
        {
            "id": "9000000017",
            "meta": {"security": [{"system": CONFIDENTIALITY, "code": "R"}]},
            "address": [{"use": "home", "postalCode": "LS1 6AE", "period": {"end": "2001-01-01"}}],
            "telecom": [
                {"system": "phone", "value": "01632960587", "use": "old"},
                {"system": "phone", "value": "+44 1632 960588"},
            ],
            "deceasedDateTime": "2020-05-01T10:00:00+00:00",
        },
        "2026-11-23",
    )
    # An ended address with nothing to replace it is still the current one.
    assert alone.postcodes == (("LS16AE", False),)
    assert alone.phones == (("01632960587", True), ("01632960588", False))
    assert alone.death_date == "2020-05-01"
    assert alone.restricted
    assert alone.names == ()


def test_index_keys_separate_current_and_historic_names() -> None:
    keys = set(search_keys(FACTS))
    assert ("fd", "O REILLY KOCINSKI|1980-02-29") in keys
    assert ("fdh", "ADAMS|1980-02-29") in keys
    assert ("df", "1980-02-29|O REILLY KOCINSKI") in keys
    assert ("sx", "1980-02-29|A352") in keys  # Adams, a previous name, for fuzzy search
    assert search_keys(demographics({"id": "1"}, "2026-01-01")) == ()


def test_exact_and_wildcard_scores() -> None:
    exact = score(q(("family", "o'reilly-kocinski"), ("birthdate", "1980-02-29")), FACTS)
    assert exact is not None
    assert exact.score == 1.0
    wild = score(q(("family", "O R*"), ("birthdate", "1980-02-29")), FACTS)
    assert wild is not None
    assert wild.score < 1.0


def test_history_only_when_asked() -> None:
    maiden = (("family", "Adams"), ("birthdate", "1980-02-29"))
    assert score(q(*maiden), FACTS) is None
    found = score(q(*maiden, ("_history", "true")), FACTS)
    assert found is not None
    assert found.score < 1.0
    old_postcode = (("family", "O Reilly Kocinski"), ("birthdate", "1980-02-29"))
    assert score(q(*old_postcode, ("address-postalcode", "BD11AA")), FACTS) is None
    assert score(q(*old_postcode, ("address-postalcode", "BD11AA"), ("_history", "true")), FACTS)


def test_compound_and_middle_given_names() -> None:
    base = (("family", "O'Reilly-Kocinski"), ("birthdate", "1980-02-29"))
    both = score(q(*base, ("given", "John Paul"), ("given", "James")), FACTS)
    assert both is not None
    assert both.score == 1.0
    assert score(q(*base, ("given", "Joh*")), FACTS) is not None
    assert score(q(*base, ("given", "Peter")), FACTS) is None


def test_fuzzy_is_phonetic_and_explains_itself() -> None:
    fuzzy = q(
        ("family", "O'Rielly-Kocinski"),
        ("given", "Jon Paul"),
        ("birthdate", "1980-02-29"),
        ("_fuzzy-match", "true"),
        ("general-practitioner", "Z99999"),
    )
    match = score(fuzzy, FACTS)
    assert match is not None
    assert 0.5 < match.score < 1.0
    components = dict(match.components)
    assert components["general-practitioner"] == 0.0  # a mismatch lowers the score only
    assert components["birthdate"] == 1.0


def test_email_is_case_insensitive_and_exact() -> None:
    base = (("family", "O Reilly Kocinski"), ("birthdate", "1980-02-29"))
    assert score(q(*base, ("email", "j.p@example.COM")), FACTS) is not None
    assert score(q(*base, ("email", "j.q@example.com")), FACTS) is None


@pytest.mark.parametrize(
    ("pairs", "error"),
    [
        ((("family", "*mith"), ("birthdate", "2010-01-01")), InvalidSearchData),
        (
            (("family", "Smith"), ("birthdate", "le2010-01-01"), ("birthdate", "le2011-01-01")),
            InvalidSearchData,
        ),
        (
            (("family", "Smith"), ("birthdate", "ge2011-01-01"), ("birthdate", "le2010-01-01")),
            InvalidSearchData,
        ),
        ((("family", "Smith"), ("birthdate", "2010-01-01"), ("phone", "01*")), InvalidSearchData),
        (
            (("family", "Smith"), ("birthdate", "2010-01-01"), ("given", "Jo"), ("given", "Pa*")),
            InvalidSearchData,
        ),
        ((("family", "Smith"), ("birthdate", "2010-01-01"), ("_max-results", "0")), InvalidValue),
        (
            (("family", "Smith"), ("birthdate", "2010-01-01"), ("general-practitioner", "$$")),
            InvalidValue,
        ),
    ],
)
def test_rejected_searches(pairs: tuple[tuple[str, str], ...], error: type[Exception]) -> None:
    with pytest.raises(error):
        q(*pairs)


def test_application_restricted_must_ask_for_one() -> None:
    pairs = (("family", "Smith"), ("birthdate", "2010-01-01"))
    assert q(*pairs, mode=AccessMode.APPLICATION).max_results == 1
    with pytest.raises(SingleResultOnly):
        q(*pairs, ("_max-results", "5"), mode=AccessMode.APPLICATION)
    assert q(*pairs).max_results == 50
