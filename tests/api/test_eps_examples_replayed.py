"""Every NHS EPS example scenario folder replayed in order against OpenSpine.

A folder whose order (``1-Process-Request-Send-200_OK.json``) we can adopt is replayed: the order
is re-signed by the demo prescriber (the examples' signatures are NHS test signatures over other
content), then the folder's release, dispense notification and claim requests are sent in that
order, retargeted to our prescription, patient and pharmacy; each must succeed like the NHS
answer did. Its cancellation request is sent against a second, fresh copy of the order. Where a
folder's dispensing messages depend on state the examples do not carry, the test says so.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.api.helpers import user_token
from tests.api.test_eps_prescribing import (
    EXAMPLES,
    GP,
    adopt,
    load,
    pharmacist,
    post,
    r_code,
    sign,
)
from tests.conftest import Clients

pytestmark = pytest.mark.anyio
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"


def scenario_folders() -> list[Path]:
    if not EXAMPLES.is_dir():
        return []
    folders = []
    for order in sorted(EXAMPLES.rglob("1-Process-Request-Send-200_OK.json")):
        if '"prescription-order"' not in order.read_text():
            continue
        if any(order.parent.glob("1-*-Request-*Release*")) or any(order.parent.glob("*Cancel*")):
            folders.append(order.parent)
    return folders


def one(folder: Path, pattern: str) -> Path | None:
    found = sorted(folder.glob(pattern))
    return found[0] if found else None


def example_ids(order: dict[str, Any]) -> tuple[str, str]:
    """(prescription ID, patient NHS number) of the NHS example order."""
    request = next(
        e["resource"]
        for e in order["entry"]
        if e["resource"]["resourceType"] == "MedicationRequest"
    )
    patient = next(
        e["resource"] for e in order["entry"] if e["resource"]["resourceType"] == "Patient"
    )
    nhs = next(i["value"] for i in patient["identifier"] if i["system"].endswith("nhs-number"))
    return request["groupIdentifier"]["value"], nhs


def dispensers(*documents: dict[str, Any]) -> set[str]:
    """Every ODS code the dispensing examples use for the pharmacy."""
    text = " ".join(orjson.dumps(d).decode() for d in documents)
    return set(
        re.findall(
            r'"system":"' + re.escape(ODS) + r'","value":"(F[A-Z0-9]{4}|V[A-Z0-9]{4})"', text
        )
    )


def patients(*documents: dict[str, Any]) -> set[str]:
    """Every NHS number in the examples (some folders' claims name another patient than the
    order does: example data, not a rule)."""
    text = " ".join(orjson.dumps(d).decode() for d in documents)
    return set(re.findall(r'"system":"https://fhir.nhs.uk/Id/nhs-number","value":"(\d{10})"', text))


def retarget(document: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
    text = orjson.dumps(document).decode()
    for theirs, ours in ids.items():
        text = text.replace(f'"{theirs}"', f'"{ours}"')
    retargeted: dict[str, Any] = orjson.loads(text)
    if retargeted.get("resourceType") == "Bundle":
        retargeted["identifier"] = {
            "system": "https://tools.ietf.org/html/rfc4122",
            "value": str(uuid.uuid4()),
        }
    return retargeted


async def create(
    client: httpx.AsyncClient,
    clients: Clients,
    order: dict[str, Any],
    pharmacy: str,
    theirs: set[str],
) -> tuple[str, dict[str, Any]]:
    token = await user_token(client, clients, GP)
    bundle = adopt(order, clients)
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] == "MedicationRequest":
            performer = resource["dispenseRequest"].get("performer")
            if performer and performer.get("identifier", {}).get("value") in theirs:
                performer["identifier"]["value"] = pharmacy
    signed = sign(bundle, (await post(client, token, "$prepare", bundle)).json(), clients)
    sent = await post(client, token, "$process-message", signed)
    assert sent.status_code == 200, sent.text
    ours = next(
        e["resource"]
        for e in signed["entry"]
        if e["resource"]["resourceType"] == "MedicationRequest"
    )
    return ours["groupIdentifier"]["value"], signed


@pytest.mark.parametrize("folder", scenario_folders(), ids=lambda p: str(p.relative_to(EXAMPLES)))
async def test_scenario_folder(client: httpx.AsyncClient, clients: Clients, folder: Path) -> None:
    order = load(folder / "1-Process-Request-Send-200_OK.json")
    their_id, their_patient = example_ids(order)
    release = one(folder, "*Request-Release-200_OK.json")
    dispense = one(folder, "*Process-Request-Dispense-200_OK.json")
    claim = one(folder, "*Claim-Request-200_OK.json")
    cancel = one(folder, "*Process-Request-Cancel-200_OK.json")
    documents = [load(p) for p in (release, dispense, claim) if p is not None]
    theirs = dispensers(order, *documents)
    _, pharmacy = pharmacist(clients)
    dispenser = await user_token(client, clients, "R8003")
    prescriber = await user_token(client, clients, GP)
    if release is not None:
        ours, _ = await create(client, clients, order, pharmacy, theirs)
        ids = {
            their_id: ours,
            their_patient: "9000000009",
            **dict.fromkeys(patients(*documents), "9000000009"),
            **dict.fromkeys(theirs, pharmacy),
        }
        released = await post(client, dispenser, "Task/$release", retarget(load(release), ids))
        assert released.status_code == 200, released.text
        passed = released.json()["parameter"][0]["resource"]
        assert passed["total"] >= 1
        if dispense is not None:
            notified = await post(
                client, dispenser, "$process-message", retarget(load(dispense), ids)
            )
            assert notified.status_code == 200, notified.text
            if claim is not None:
                claimed = await post(client, dispenser, "Claim", retarget(load(claim), ids))
                assert claimed.status_code == 200, claimed.text
    if cancel is not None:
        ours, _ = await create(client, clients, order, pharmacy, theirs)
        ids = {their_id: ours, their_patient: "9000000009"}
        cancelled = await post(client, prescriber, "$process-message", retarget(load(cancel), ids))
        assert cancelled.status_code == 200, cancelled.text
        assert r_code(cancelled) == "R-0001"


def test_there_are_scenarios_to_replay() -> None:
    if not EXAMPLES.is_dir():
        pytest.skip(f"NHS reference material not present at {EXAMPLES}")
    assert len(scenario_folders()) >= 10
