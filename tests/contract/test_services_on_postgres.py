"""PDS search, MESH and the directory on PostgreSQL: the same service code, the other store."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from mesh_client import AuthTokenGenerator

from openspine.app import create_app
from openspine.platform.security.keys import load_private_key
from openspine.settings import Secret, Settings
from openspine.synth.credentials import app_token_form, client_assertion
from openspine.synth.demo import CREDENTIALS_FILE, create_keys_and_settings
from tests.conftest import BASE_URL, load_demo_store
from tests.postgres import throwaway_database

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


@pytest.fixture(scope="module")
def pg_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with throwaway_database("openspine_services") as url:
        data_dir = tmp_path_factory.mktemp("pg-services")
        settings = create_keys_and_settings(data_dir, store_url=url).with_base_url(BASE_URL)
        asyncio.run(load_demo_store(data_dir, settings, size=200, seed=3))
        yield data_dir


@pytest.fixture
async def pg(pg_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = dataclasses.replace(
        Settings.for_data_dir(pg_dir, base_url=BASE_URL),
        mesh_sandbox=True,
        mesh_shared_key=Secret("TestKey"),
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
            yield http


async def backend_token(http: httpx.AsyncClient, data_dir: Path) -> str:
    creds = json.loads((data_dir / CREDENTIALS_FILE).read_text())
    app = next(a for a in creds["apps"] if a["client_id"] == "openspine-demo-backend")
    key = load_private_key(data_dir / app["private_key_file"])
    assertion = client_assertion(key, app["kid"], app["client_id"], f"{BASE_URL}/oauth2/token")
    response = await http.post("/oauth2/token", data=app_token_form(assertion))
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def test_pds_search_and_directory_on_postgres(pg: httpx.AsyncClient, pg_dir: Path) -> None:
    token = await backend_token(pg, pg_dir)
    headers = {"Authorization": f"Bearer {token}", "X-Request-ID": str(uuid.uuid4())}
    found = await pg.get(
        "/personal-demographics/FHIR/R4/Patient",
        params=[("family", "Smith"), ("gender", "female"), ("birthdate", "eq2010-10-22")],
        headers=headers,
    )
    assert found.status_code == 200, found.text
    assert [e["resource"]["id"] for e in found.json()["entry"]] == ["9000000009"]
    wild = await pg.get(
        "/personal-demographics/FHIR/R4/Patient",
        params=[("family", "Smy*"), ("birthdate", "2010-10-22"), ("_max-results", "1")],
        headers={**headers, "X-Request-ID": str(uuid.uuid4())},
    )
    assert wild.status_code == 200
    orgs = await pg.get(
        "/spine-directory/FHIR/R4/Organization",
        params={"address-postalcode": "LS1"},
        headers=headers,
    )
    assert orgs.status_code == 200
    assert "Y12345" in [e["resource"]["id"] for e in orgs.json()["entry"]]


async def test_mesh_on_postgres(pg: httpx.AsyncClient) -> None:
    def auth(mailbox: str) -> dict[str, str]:
        token = AuthTokenGenerator(b"TestKey", mailbox, "password").generate_token()
        return {"Authorization": token, "Accept": "application/vnd.mesh.v2+json"}

    ids = []
    for n in range(12):
        sent = await pg.post(
            "/messageexchange/ALICE/outbox",
            content=f"hello {n}".encode(),
            headers={"mex-To": "BOB", "mex-WorkflowID": "PG_TEST", **auth("ALICE")},
        )
        assert sent.status_code == 202, sent.text
        ids.append(sent.json()["message_id"])
    first = await pg.get(
        "/messageexchange/BOB/inbox?max_results=10&workflow_filter=PG_TEST", headers=auth("BOB")
    )
    assert first.json()["messages"] == ids[:10]
    rest = await pg.get(first.json()["links"]["next"], headers=auth("BOB"))
    assert rest.json()["messages"] == ids[10:]
    got = await pg.get(f"/messageexchange/BOB/inbox/{ids[0]}", headers=auth("BOB"))
    assert got.content == b"hello 0"
    ack = await pg.put(
        f"/messageexchange/BOB/inbox/{ids[0]}/status/acknowledged", headers=auth("BOB")
    )
    assert ack.status_code == 200
