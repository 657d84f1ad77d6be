"""Shared fixtures: a demo data directory (keys, settings, small population) and clients."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from openspine.app import build_platform, create_app
from openspine.platform.security.keys import load_private_key
from openspine.settings import Settings
from openspine.synth.credentials import client_assertion, id_token, patient_id_token
from openspine.synth.demo import CREDENTIALS_FILE, create_demo_store, create_keys_and_settings

BASE_URL = "http://testserver"
REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
PATIENT_BASE = "/personal-demographics/FHIR/R4"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def reference_file(relative: str) -> Path:
    """A file of ../shared/reference; the test is skipped where that folder is absent."""
    path = REFERENCE / relative
    if not path.is_file():
        pytest.skip(f"NHS reference material not present at {path}")
    return path


def pds_stub(relative: str) -> Any:
    """A JSON stub of the NHS PDS sandbox (``patientResponses/…``, ``errorResponses/…``)."""
    return json.loads(
        reference_file(f"pds/karate-tests/src/test/java/mocks/stubs/{relative}").read_text()
    )


async def load_demo_store(data_dir: Path, settings: Settings, *, size: int, seed: int) -> None:
    """A demo store of ``size`` patients, loaded through the platform the settings name."""
    platform = build_platform(settings)
    await platform.store.start()
    try:
        await create_demo_store(data_dir, settings, platform.store, size=size, seed=seed)
    finally:
        await platform.store.close()


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("demo")
    settings = create_keys_and_settings(data_dir).with_base_url(BASE_URL)
    asyncio.run(load_demo_store(data_dir, settings, size=40, seed=7))
    return data_dir


@pytest.fixture(scope="session")
def demo_settings(demo_dir: Path) -> Settings:
    return Settings.for_data_dir(demo_dir, base_url=BASE_URL)


@pytest.fixture(scope="session")
def credentials(demo_dir: Path) -> dict[str, Any]:
    creds: dict[str, Any] = json.loads((demo_dir / CREDENTIALS_FILE).read_text())
    return creds


@pytest.fixture
async def client(demo_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(demo_settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
            yield http


class Clients:
    """Builds the signed JWTs a real client would, from the demo credentials."""

    def __init__(self, demo_dir: Path, credentials: dict[str, Any]) -> None:
        self.dir = demo_dir
        self.creds = credentials

    def app(self, client_id: str) -> dict[str, Any]:
        return next(a for a in self.creds["apps"] if a["client_id"] == client_id)

    def assertion(self, client_id: str, **overrides: Any) -> str:
        app = self.app(client_id)
        key = load_private_key(self.dir / app["private_key_file"])
        return client_assertion(key, app["kid"], client_id, f"{BASE_URL}/oauth2/token", **overrides)

    def id_token(self, user_id: str, role_profile_id: str, client_id: str) -> str:
        idp = self.creds["identity_provider"]
        key = load_private_key(self.dir / idp["private_key_file"])
        return id_token(
            key,
            idp["kid"],
            issuer=idp["issuer"],
            client_id=client_id,
            user_id=user_id,
            role_profile_id=role_profile_id,
        )

    def patient_id_token(self, nhs_number: str, proofing_level: str = "P9") -> str:
        idp = self.creds["identity_provider"]
        key = load_private_key(self.dir / idp["private_key_file"])
        return patient_id_token(
            key,
            idp["kid"],
            issuer=idp["issuer"],
            client_id="openspine-demo-patient",
            nhs_number=nhs_number,
            proofing_level=proofing_level,
        )

    def user(self, job_role: str) -> tuple[str, str]:
        for user in self.creds["users"]:
            for rp in user["role_profiles"]:
                if rp["job_role_code"].endswith(job_role):
                    return user["user_id"], rp["role_profile_id"]
        raise KeyError(job_role)


@pytest.fixture(scope="session")
def clients(demo_dir: Path, credentials: dict[str, Any]) -> Clients:
    return Clients(demo_dir, credentials)


@pytest.fixture
def request_headers() -> dict[str, str]:
    import uuid

    return {"X-Request-ID": str(uuid.uuid4())}
