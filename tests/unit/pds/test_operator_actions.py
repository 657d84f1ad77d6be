"""Merge and invalidate, as an operator runs them from the CLI, seen through the API."""

from __future__ import annotations

import shutil
from pathlib import Path

import anyio
import httpx
import pytest
from click.testing import CliRunner, Result

from openspine.app import create_app
from openspine.cli import main
from openspine.settings import Settings
from tests.api.helpers import user_token
from tests.api.pds_helpers import headers, search
from tests.conftest import BASE_URL, PATIENT_BASE, Clients

pytestmark = pytest.mark.anyio


async def test_merge_and_invalidate(demo_dir: Path, clients: Clients, tmp_path: Path) -> None:
    data_dir = tmp_path / "copy"
    shutil.copytree(demo_dir, data_dir)
    runner = CliRunner()

    async def cli(*args: str) -> Result:
        argv = [*args, "--data-dir", str(data_dir)]
        return await anyio.to_thread.run_sync(lambda: runner.invoke(main, argv))

    merged = await cli("pds", "merge", "9000000017", "9000000009", "--operator", "ops1")
    assert merged.exit_code == 0, merged.output
    again = await cli("pds", "merge", "9000000017", "9000000009", "--operator", "ops1")
    assert again.exit_code == 1
    gone = await cli("pds", "invalidate", "9000000033", "--operator", "ops1")
    assert gone.exit_code == 0, gone.output
    assert (await cli("audit", "verify")).exit_code == 0

    app = create_app(Settings.for_data_dir(data_dir, base_url=BASE_URL))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
            token = await user_token(http, clients, "R8000")
            read = await http.get(f"{PATIENT_BASE}/Patient/9000000017", headers=headers(token))
            assert read.status_code == 200
            assert read.json()["id"] == "9000000009"
            found = await search(http, token, [("family", "Smyth"), ("birthdate", "2010-10-22")])
            assert [e["resource"]["id"] for e in found.json()["entry"]] == ["9000000009"]
            invalid = await http.get(f"{PATIENT_BASE}/Patient/9000000033", headers=headers(token))
            assert invalid.status_code == 404
            assert invalid.json()["issue"][0]["details"]["coding"][0]["code"] == (
                "INVALIDATED_RESOURCE"
            )
