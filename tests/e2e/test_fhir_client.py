"""A real FHIR client (fhirpy) against a running server: read, search and patch a patient."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest
from fhirpy import SyncFHIRClient

from openspine.platform.security.keys import load_private_key
from openspine.synth.credentials import client_assertion, id_token, user_token_form
from tests.e2e.test_demo_server import server

pytestmark = pytest.mark.e2e
__all__ = ["server"]


def gp_token(base_url: str, data_dir: Path) -> str:
    creds = json.loads((data_dir / "demo-credentials.json").read_text())
    clinical = next(a for a in creds["apps"] if "user-restricted" in a["access_modes"])
    gp = next(u for u in creds["users"] if u["role_profiles"][0]["job_role_code"].endswith("R8000"))
    idp = creds["identity_provider"]
    subject = id_token(
        load_private_key(data_dir / idp["private_key_file"]),
        idp["kid"],
        issuer=idp["issuer"],
        client_id=clinical["client_id"],
        user_id=gp["user_id"],
        role_profile_id=gp["role_profiles"][0]["role_profile_id"],
    )
    key = load_private_key(data_dir / clinical["private_key_file"])
    form = user_token_form(
        client_assertion(key, clinical["kid"], clinical["client_id"], creds["token_url"]), subject
    )
    response = httpx.post(f"{base_url}/oauth2/token", data=form, timeout=10)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def fhir(base_url: str, token: str, **headers: str) -> SyncFHIRClient:
    """A client per request: PDS wants a fresh X-Request-ID on each."""
    return SyncFHIRClient(
        f"{base_url}/personal-demographics/FHIR/R4",
        authorization=f"Bearer {token}",
        extra_headers={"X-Request-ID": str(uuid.uuid4()), **headers},
    )


def test_read_search_and_patch_with_fhirpy(server: tuple[str, Path, Path]) -> None:
    base_url, data_dir, _ = server
    token = gp_token(base_url, data_dir)
    patient = fhir(base_url, token).reference("Patient", "9000000017").to_resource()
    assert patient["name"][0]["family"] == "Smyth"
    version = patient["meta"]["versionId"]

    found = (
        fhir(base_url, token)
        .resources("Patient")
        .search(family="Smyth", given="Jayne", birthdate="eq2010-10-22")
        .fetch()
    )
    assert [p["id"] for p in found] == ["9000000017"]

    address_id = patient["address"][0]["id"]
    patched = fhir(
        base_url,
        token,
        **{"Content-Type": "application/json-patch+json", "If-Match": f'W/"{version}"'},
    ).patch(
        "Patient",
        "9000000017",
        patches=[
            {"op": "test", "path": "/address/0/id", "value": address_id},
            {"op": "replace", "path": "/address/0/line/0", "value": "2 Trevelyan Square"},
        ],
    )
    assert patched["address"][0]["line"][0] == "2 Trevelyan Square"
    assert patched["meta"]["versionId"] == str(int(version) + 1)
    again = fhir(base_url, token).reference("Patient", "9000000017").to_resource()
    assert again["address"][0]["line"][0] == "2 Trevelyan Square"
