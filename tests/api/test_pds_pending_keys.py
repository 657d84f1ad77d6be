"""A bulk load that stopped before merging its search keys: the server merges them at start."""

from __future__ import annotations

import json
from itertools import islice
from pathlib import Path

import httpx
import pytest

from openspine.app import build_platform, create_app
from openspine.platform.audit.events import AuditAction, AuditContext, AuditOutcome, audit_record
from openspine.settings import Settings
from openspine.synth.demo import CREDENTIALS_FILE, create_demo_store, create_keys_and_settings
from openspine.synth.loader import patient_put
from openspine.synth.patients import PatientFacts
from openspine.synth.population import nhs_numbers
from tests.api.helpers import user_token
from tests.api.pds_helpers import search
from tests.conftest import BASE_URL, Clients

pytestmark = pytest.mark.anyio


async def test_a_stopped_loads_patients_are_searchable_once_the_server_starts(
    tmp_path: Path,
) -> None:
    settings = create_keys_and_settings(tmp_path).with_base_url(BASE_URL)
    platform = build_platform(settings)
    await platform.store.start()
    nhs_number = next(islice(nhs_numbers(99), 1))
    try:
        await create_demo_store(tmp_path, settings, platform.store, size=0)
        facts = PatientFacts(
            nhs_number=nhs_number,
            family="Pendingham",
            given=["Ada"],
            gender="female",
            birth_date="1990-04-01",
        )
        audit = audit_record(
            action=AuditAction.PDS_POPULATION_LOAD,
            outcome=AuditOutcome.SUCCESS,
            principal=None,
            context=AuditContext(None, None),
            detail="1 patients loaded by operator",
        )
        # The load's chunk commits; the process stops before merge_pending_index.
        await platform.store.bulk_load([patient_put(facts)], audit, index_later=True)
        assert (
            await platform.store.scan_index("Patient", "fd", "PENDINGHAM", "PENDINGHAM~", 5) == []
        )
    finally:
        await platform.store.close()

    clients = Clients(tmp_path, json.loads((tmp_path / CREDENTIALS_FILE).read_text()))
    app = create_app(Settings.for_data_dir(tmp_path, base_url=BASE_URL))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
            token = await user_token(http, clients, "R8000")
            found = await search(
                http, token, [("family", "Pendingham"), ("birthdate", "eq1990-04-01")]
            )
    assert found.status_code == 200, found.text
    assert [e["resource"]["id"] for e in found.json()["entry"]] == [nhs_number]
