"""The NHS stubs' scenarios, reproduced: their patients loaded into a store, then searched and read.

Each search stub of the PDS test pack (../shared/reference/pds/karate-tests/…/searchResponses)
is a real INT-environment answer. The patients in them are loaded here as PDS records; each
scenario runs the search its stub's name describes and checks that the stub's patients come
back, in the search field set, scored and ordered. Skipped where the reference is absent.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.patient import Patient

from openspine.app import build_platform, create_app
from openspine.pds.fhir import restricted_view
from openspine.pds.ports import PATIENT
from openspine.pds.service import patient_put
from openspine.settings import Settings
from openspine.synth.demo import CREDENTIALS_FILE, create_demo_store, create_keys_and_settings
from openspine.synth.loader import load_patients
from openspine.synth.sandbox import INVALIDATED, SANDBOX_PATIENTS, SUPERSEDED
from tests.api.helpers import user_token
from tests.api.pds_helpers import headers, search
from tests.conftest import BASE_URL, PATIENT_BASE, REFERENCE, Clients

pytestmark = pytest.mark.anyio
STUBS = REFERENCE / "pds/karate-tests/src/test/java/mocks/stubs"
OURS = {p.nhs_number for p in (*SANDBOX_PATIENTS, *SUPERSEDED.values(), *INVALIDATED)}


def stub(relative: str) -> Any:
    return json.loads((STUBS / relative).read_text())


def stub_patients() -> dict[str, dict[str, Any]]:
    """Every distinct patient of the search and read stubs, less the ones the demo already has."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted((STUBS / "searchResponses").glob("*.json")):
        bundle = json.loads(path.read_text())
        for entry in bundle.get("entry", []):
            found.setdefault(entry["resource"]["id"], entry["resource"])
    for path in sorted((STUBS / "patientResponses").glob("patient_*.json")):
        patient = json.loads(path.read_text())
        found[patient["id"]] = patient  # the full record wins over a search result
    return {k: v for k, v in found.items() if k not in OURS}


@pytest.fixture(scope="module")
def nhs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not STUBS.is_dir():
        pytest.skip(f"NHS reference material not present at {STUBS}")
    data_dir = tmp_path_factory.mktemp("nhs-stubs")
    settings = create_keys_and_settings(data_dir).with_base_url(BASE_URL)
    today = datetime.now(UTC).date().isoformat()

    async def load() -> None:
        platform = build_platform(settings)
        await platform.store.start()
        try:
            await create_demo_store(data_dir, settings, platform.store, size=0, seed=1)
            puts = [
                patient_put(p, expected_version=None, today=today) for p in stub_patients().values()
            ]
            await load_patients(platform.store, puts)
        finally:
            await platform.store.close()

    asyncio.run(load())
    return data_dir


@pytest.fixture(scope="module")
def nhs_clients(nhs_dir: Path) -> Clients:
    return Clients(nhs_dir, json.loads((nhs_dir / CREDENTIALS_FILE).read_text()))


@pytest.fixture
async def nhs(nhs_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings.for_data_dir(nhs_dir, base_url=BASE_URL))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
            yield http


def stub_ids(name: str) -> list[str]:
    return [e["resource"]["id"] for e in stub(f"searchResponses/{name}").get("entry", [])]


SCENARIOS: list[tuple[str, list[tuple[str, str]], str]] = [
    # (stub, query, how the answer must relate to the stub's patients)
    (
        "bill_garton_searchset.json",
        # the full record (patient_9693632109.json) has this date of birth; its search stub another
        [("family", "Garton"), ("given", "Bill"), ("birthdate", "eq1946-06-23")],
        "equal",
    ),
    (
        "dateOfDeath_searchset.json",
        [("family", "TUNNEY"), ("birthdate", "1980-01-21"), ("death-date", "eq2019-02-07")],
        "equal",
    ),
    (
        "general_practitioner_searchset.json",
        [("family", "MEEK"), ("birthdate", "2015-10-22"), ("general-practitioner", "A20047")],
        "equal",
    ),
    (
        "knap_kathy_exact_match.json",
        [
            ("family", "KNAPP"),
            ("given", "Kathy"),
            ("birthdate", "eq1943-07-03"),
            ("_exact-match", "true"),
        ],
        "equal",
    ),
    (
        "martha_massam_searchset.json",
        [("family", "massam"), ("given", "martha"), ("birthdate", "eq1920-08-11")],
        "equal",
    ),
    (
        "jackie_jones_searchset.json",
        [("family", "Jones"), ("given", "Jackie"), ("birthdate", "eq2000-01-01")],
        "equal",
    ),
    ("youds_searchset.json", [("family", "YOUDS"), ("birthdate", "eq1970-01-24")], "equal"),
    (
        "mock_multiple_searchset.json",
        [("family", "McMatch-Multiple"), ("birthdate", "eq1997-08-20")],
        "equal",
    ),
    (
        "mock_single_searchset.json",
        [("family", "McMatch-Single"), ("birthdate", "eq1954-10-26")],
        "equal",
    ),
    (
        "countrycode_mobile_searchset.json",
        [("family", "Muir"), ("birthdate", "2017-09-06"), ("phone", "00917855986859")],
        "equal",
    ),
    (
        "historic_email_searchset.json",
        [("family", "Smith"), ("birthdate", "2000-05-05"), ("email", "new@NEW.com")],
        "equal",
    ),
    (
        "other_givenName.json",
        [("family", "Smith"), ("given", "Bob"), ("birthdate", "2000-05-05")],
        "equal",
    ),
    (
        "john_paul_smith_searchset.json",
        [
            ("family", "Smith"),
            ("given", "John Paul"),
            ("given", "James"),
            ("birthdate", "2010-10-22"),
        ],
        "equal",
    ),
    (
        "multimatch_phoneAndEmail_searchset.json",
        [("family", "Smith"), ("birthdate", "2000-05-05"), ("email", "test@test.com")],
        "subset",
    ),
    (
        "postalcode_wildcard_searchset.json",
        [("family", "Smith"), ("birthdate", "2000-05-05"), ("address-postalcode", "DN17*")],
        "subset",
    ),
    (
        "fuzzy_multimatch_searchset.json",
        [
            ("family", "Smith"),
            ("gender", "male"),
            ("birthdate", "2000-05-05"),
            ("address-postalcode", "DN17 4AA"),
            ("_fuzzy-match", "true"),
        ],
        "subset",
    ),
    (
        "pauline_attison_searchset.json",
        [
            ("family", "Attison"),
            ("given", "Pauline"),
            ("birthdate", "1960-07-14"),
            ("_fuzzy-match", "true"),
        ],
        "equal",
    ),
    (
        "med_rowenad_searchset.json",
        [
            ("family", "Med"),
            ("given", "Rowena"),
            ("birthdate", "1999-09-09"),
            ("_fuzzy-match", "true"),
        ],
        "equal",
    ),
]


@pytest.mark.parametrize(("name", "query", "relation"), SCENARIOS, ids=[s[0] for s in SCENARIOS])
async def test_search_scenario(
    nhs: httpx.AsyncClient,
    nhs_clients: Clients,
    name: str,
    query: list[tuple[str, str]],
    relation: str,
) -> None:
    token = await user_token(nhs, nhs_clients, "R8000")
    response = await search(nhs, token, query)
    assert response.status_code == 200, response.text
    bundle = response.json()
    Bundle.model_validate(bundle)
    ours = [e["resource"]["id"] for e in bundle.get("entry", [])]
    expected = stub_ids(name)
    if relation == "equal":
        assert sorted(ours) == sorted(expected)
    else:
        assert set(expected) <= set(ours)
    scores = [e["search"]["score"] for e in bundle.get("entry", [])]
    assert scores == sorted(scores, reverse=True)
    assert all(0 < s <= 1 for s in scores)
    if query[-1] == ("_exact-match", "true"):
        assert scores == [1.0] * len(scores)
    # The same top-level elements as the NHS answer, patient by patient.
    theirs = {e["resource"]["id"]: e["resource"] for e in stub(f"searchResponses/{name}")["entry"]}
    for entry in bundle.get("entry", []):
        if entry["resource"]["id"] in theirs:
            assert set(entry["resource"]) <= set(theirs[entry["resource"]["id"]]) | {"extension"}


async def test_restricted_stub_patient_is_searchable_without_location(
    nhs: httpx.AsyncClient, nhs_clients: Clients
) -> None:
    token = await user_token(nhs, nhs_clients, "R8000")
    response = await search(nhs, token, [("family", "Godsoe"), ("birthdate", "1936-02-24")])
    assert [e["resource"]["id"] for e in response.json()["entry"]] == ["9693632125"]
    resource = response.json()["entry"][0]["resource"]
    assert not {"address", "telecom", "generalPractitioner", "contact"} & set(resource)


async def test_read_every_patient_stub(nhs: httpx.AsyncClient, nhs_clients: Clients) -> None:
    """GET answers each stubbed record as PDS did: same bytes of JSON, ETag from versionId."""
    token = await user_token(nhs, nhs_clients, "R8000")
    for path in sorted((STUBS / "patientResponses").glob("patient_*.json")):
        patient = json.loads(path.read_text())
        if patient["id"] in OURS:
            continue
        response = await nhs.get(f"{PATIENT_BASE}/Patient/{patient['id']}", headers=headers(token))
        assert response.status_code == 200, path.name
        assert response.headers["etag"] == f'W/"{patient["meta"]["versionId"]}"'
        restricted = any(s.get("code") == "R" for s in patient["meta"].get("security", []))
        assert response.json() == (restricted_view(patient) if restricted else patient)
        Patient.model_validate(response.json())


def test_store_holds_the_stub_patients(nhs_dir: Path) -> None:
    assert PATIENT == "Patient"
    assert len(stub_patients()) > 40
