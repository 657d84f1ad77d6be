"""GET /Patient?… through the ASGI app: the PDS search contract against the demo population."""

from __future__ import annotations

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle

from tests.api.helpers import app_token, user_token
from tests.api.pds_helpers import search
from tests.api.test_pds_read import coding
from tests.conftest import Clients, pds_stub

pytestmark = pytest.mark.anyio
GP = "R8000"
JANE = [("family", "Smith"), ("gender", "female"), ("birthdate", "eq2010-10-22")]


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    body = response.json()
    Bundle.model_validate(body)
    assert body["total"] == len(body.get("entry", []))
    return [e["resource"]["id"] for e in body.get("entry", [])]


async def test_basic_search_with_phone_and_email(
    client: httpx.AsyncClient, clients: Clients
) -> None:
    token = await user_token(client, clients, GP)
    found = await search(
        client, token, [*JANE, ("email", "jane.smith@example.com"), ("phone", "01632960587")]
    )
    assert ids(found) == ["9000000009"]
    entry = found.json()["entry"][0]
    assert entry["search"]["score"] == 1.0
    assert entry["fullUrl"].endswith("/personal-demographics/FHIR/R4/Patient/9000000009")
    # The search field set: no pharmacy extension, home address only.
    urls = [e["url"] for e in entry["resource"].get("extension", [])]
    assert not any("NominatedPharmacy" in u for u in urls)
    negative = [*JANE, ("email", "deb.trotter@example.com"), ("phone", "0121111111")]
    assert ids(await search(client, token, negative)) == []


async def test_wildcards_case_and_ranges(client: httpx.AsyncClient, clients: Clients) -> None:
    token = await user_token(client, clients, GP)
    wild = await search(
        client, token, [("family", "sm*"), ("gender", "female"), ("birthdate", "eq2010-10-22")]
    )
    found = ids(wild)
    assert {"9000000009", "9000000017", "9000000025"} <= set(found)
    assert all(e["search"]["score"] < 1 for e in wild.json()["entry"])
    ranged = [
        ("family", "SMITH"),
        ("birthdate", "ge2010-10-21"),
        ("birthdate", "le2010-10-23"),
    ]
    assert ids(await search(client, token, ranged)) == ["9000000009"]
    postcode = [("family", "Smith"), ("birthdate", "2010-10-22"), ("address-postalcode", "ls16ae")]
    assert ids(await search(client, token, postcode)) == ["9000000009"]
    postcode_wild = [*postcode[:2], ("address-postalcode", "LS*")]
    assert ids(await search(client, token, postcode_wild)) == ["9000000009"]


async def test_restricted_patient_is_returned_without_location(
    client: httpx.AsyncClient, clients: Clients
) -> None:
    token = await user_token(client, clients, GP)
    params = [("family", "Smythe"), ("given", "Janet"), ("birthdate", "eq2010-10-22")]
    response = await search(client, token, params)
    assert ids(response) == ["9000000025"]
    resource = response.json()["entry"][0]["resource"]
    for field in ("address", "telecom", "generalPractitioner", "contact"):
        assert field not in resource
    # Never by postcode or GP, even when it matches.
    for extra in (("address-postalcode", "LS1 6AE"), ("general-practitioner", "Y12345")):
        assert ids(await search(client, token, [*params, extra])) == []


async def test_fuzzy_search_finds_homophones_and_transpositions(
    client: httpx.AsyncClient, clients: Clients
) -> None:
    token = await user_token(client, clients, GP)
    fuzzy = [("_fuzzy-match", "true"), ("birthdate", "eq2010-10-22")]
    found = await search(client, token, [*fuzzy, ("family", "Smyth"), ("given", "Jayne")])
    assert "9000000009" in ids(found)
    scores = {e["resource"]["id"]: e["search"]["score"] for e in found.json()["entry"]}
    assert scores["9000000017"] == 1.0  # Jayne Smyth exactly
    assert 0.8 < scores["9000000009"] < 1.0  # Jane Smith sounds the same
    assert list(scores.values()) == sorted(scores.values(), reverse=True)
    transposed = await search(client, token, [*fuzzy, ("family", "Jane"), ("given", "Smith")])
    assert "9000000009" in ids(transposed)
    exact = await search(
        client, token, [*fuzzy, ("family", "Smyth"), ("given", "Jayne"), ("_exact-match", "true")]
    )
    assert ids(exact) == ["9000000017"]


async def test_superseded_record_resolves_to_survivor_and_invalidated_is_hidden(
    client: httpx.AsyncClient, clients: Clients
) -> None:
    token = await user_token(client, clients, GP)
    assert ids(await search(client, token, JANE)) == ["9000000009"]  # 9000000041 folds into it
    invalid = [("family", "Invalid"), ("birthdate", "1990-01-01")]
    assert ids(await search(client, token, invalid)) == []


async def test_too_many_matches_is_the_nhs_outcome(
    client: httpx.AsyncClient, clients: Clients
) -> None:
    token = await user_token(client, clients, GP)
    params = [("family", "sm*"), ("birthdate", "eq2010-10-22"), ("_max-results", "1")]
    response = await search(client, token, params)
    assert response.status_code == 200
    assert response.json() == pds_stub("searchResponses/TOO_MANY_MATCHES.json")


async def test_application_restricted_gets_only_a_unique_match(
    client: httpx.AsyncClient, clients: Clients
) -> None:
    token = await app_token(client, clients)
    assert ids(await search(client, token, JANE)) == ["9000000009"]
    response = await search(client, token, [*JANE, ("_max-results", "2")])
    assert response.status_code == 403
    assert coding(response)["code"] == "INVALID_VALUE"
    many = await search(client, token, [("family", "sm*"), ("birthdate", "eq2010-10-22")])
    assert many.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ([], 400, "UNSUPPORTED_SERVICE"),
        ([*JANE, ("invalidParam", "123")], 400, "ADDITIONAL_PROPERTIES"),
        ([("email", "j.smith@example.com"), ("phone", "0163")], 400, "INVALID_SEARCH_DATA"),
        ([("family", "Smith"), ("birthdate", "22-10-2010")], 400, "INVALID_VALUE"),
        ([("family", "Smith"), ("birthdate", "eq2010-13-01")], 400, "INVALID_VALUE"),
        ([("family", "S*"), ("birthdate", "2010-10-22")], 400, "INVALID_SEARCH_DATA"),
        ([*JANE[:1], ("gender", "mal"), JANE[2]], 400, "INVALID_VALUE"),
        ([("family", "x" * 36), JANE[2]], 400, "INVALID_VALUE"),
        (
            [*JANE, ("address-postcode", "LS1"), ("address-postalcode", "LS1")],
            400,
            "INVALID_SEARCH_DATA",
        ),
        (
            [("family", "Sm*"), ("given", "Jane"), JANE[2], ("_fuzzy-match", "true")],
            400,
            "INVALID_SEARCH_DATA",
        ),
        ([("family", "Smith"), JANE[2], ("_fuzzy-match", "true")], 400, "INVALID_SEARCH_DATA"),
        ([*JANE, ("_max-results", "51")], 400, "INVALID_VALUE"),
        ([*JANE, ("_history", "maybe")], 400, "INVALID_VALUE"),
        ([*JANE, ("gender", "male")], 400, "INVALID_SEARCH_DATA"),
    ],
)
async def test_search_rules(
    client: httpx.AsyncClient,
    clients: Clients,
    params: list[tuple[str, str]],
    status: int,
    code: str,
) -> None:
    token = await user_token(client, clients, GP)
    response = await search(client, token, params)
    assert response.status_code == status, response.text
    assert coding(response)["code"] == code
